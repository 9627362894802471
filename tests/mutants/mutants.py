# SPDX-License-Identifier: MIT
"""
The mutants `make mutants` applies (tests/mutants/run.py), one per security
or correctness check: `old` must occur exactly once in `file`; it becomes
`new`; the `tests` (ctest names or shell commands, run in the scratch tree)
must then fail. Each names the check in `what`. Mutants that cannot be
observed by design carry `equivalent` (the reason) and are not run; those
whose tests need the Soft-RoCE VM carry `vm`.
"""

FRESH = ["unit/test_fresh"]

MUTANTS = [
    # ---- connect token (protect/token.c) ----
    dict(id="token-mac", file="src/protect/token.c",
         what="the MAC compared in constant time",
         old="if (CRYPTO_memcmp(mac, peer_mac, sizeof(mac)) != 0)",
         new="if (0)",
         tests=["unit/test_protect", "integration/t_strangers_ofi"]),
    dict(id="token-burn", file="src/protect/token.c",
         what="any attempt burns the token",
         old="\twas_used = t->used;\n\tt->used = true;\n",
         new="\twas_used = t->used;\n",
         tests=["unit/test_protect"]),
    dict(id="token-deadline", file="src/protect/token.c",
         what="the token's deadline",
         old="if (now_ms > t->deadline_ms) {", new="if (0) {",
         tests=["unit/test_protect", "integration/t_adversary"]),
    dict(id="token-used-filter", file="src/session/fabric.c",
         what="connect requests skip sessions whose token is used",
         old="c->session_id == pd.session_id && !c->token.used)",
         new="c->session_id == pd.session_id)",
         equivalent="srdma__token_check refuses a used token anyway (the "
                    "burn); the filter only picks which session to refuse"),
    dict(id="verbs-qpn", file="src/session/fabric.c",
         what="verbs: the connecting QPN is the one agreed over TLS",
         old="(pd.initiator_id != c->remote_qpn ||\n\t     "
             "req->initiator_qpn != c->remote_qpn))",
         new="(0))",
         vm=True,
         tests=["bash tests/vm/run.sh ../build tests/vm/guest.d/"
                "20-verbs-unit.sh"]),

    # ---- records (protect/protect.c, aead*.c) ----
    dict(id="record-seq", file="src/protect/protect.c",
         what="a record must carry the next sequence number",
         old="if (seq != a->seq)", new="if (0)",
         tests=["unit/test_protect"]),
    dict(id="tag-evp", file="src/protect/aead.c",
         what="EVP: a tag that does not verify fails the record",
         old="\t\tERR_clear_error();\n\t\treturn SRDMA_EINTEGRITY;",
         new="\t\tERR_clear_error();\n\t\treturn 0;",
         tests=["unit/test_protect", "unit/test_aead"]),
    dict(id="tag-ipsecmb", file="src/protect/aead_imb.c",
         what="intel-ipsec-mb: the tag compared in constant time",
         old="if (!enc && CRYPTO_memcmp(calc, tag, SRDMA_TAG_LEN) != 0)",
         new="if (0)",
         tests=["unit/test_aead", "integration/t_tamper"]),
    dict(id="nonce-owner", file="src/protect/block.c",
         what="the region's owner is in the block nonce",
         old="srdma__be16(ctr, (uint16_t)((unsigned)owner << 15 | "
             "region_id));",
         new="srdma__be16(ctr, (uint16_t)region_id);",
         tests=["unit/test_protect"]),
    dict(id="key-wipe", file="src/session/handshake.c",
         what="the raw exporter keys are wiped once in the AEAD contexts",
         old="\t/* The aead contexts hold their own copies now. */\n"
             "\tsrdma__keys_wipe(k);\n",
         new="",
         equivalent="the connection wipes c->keys again when it is freed "
                    "(srdma__conn_free), so nothing observable changes"),

    # ---- TLS and policy (ctrl/, session/handshake.c) ----
    dict(id="tls-min", file="src/ctrl/ctx.c",
         what="TLS 1.3 is the minimum",
         old="SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_3_VERSION)",
         new="SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION)",
         tests=["integration/t_ctrl_openssl"]),
    dict(id="allow-list", file="src/ctrl/ctrl.c",
         what="the server checks the client against its allow-list",
         old="if (c->server && !srdma__ctrl_allowed_by(c->t, peer)) {",
         new="if (0) {",
         tests=["unit/test_ctrl", "integration/t_policy"]),
    dict(id="allow-ticket", file="src/ctrl/tickets.c",
         what="no ticket for a client off the allow-list",
         old="\tif (!srdma__ctrl_allowed_by(t, peer))\n\t\tSSL_set_num_tickets",
         new="\tif (0)\n\t\tSSL_set_num_tickets",
         equivalent="the resumed session is refused in handshake_done by "
                    "the allow-list check there (mutant allow-list); "
                    "issuing no ticket only saves the client a useless one"),
    dict(id="resume-expired", file="src/ctrl/ctrl.c",
         what="a resumed session re-checks the peer certificate's expiry",
         old="if (resumed && X509_cmp_current_time(X509_get0_notAfter(peer)) "
             "<= 0) {",
         new="if (0) {",
         tests=["unit/test_ctrl"]),
    dict(id="ticket-expired", file="src/ctrl/tickets.c",
         what="a ticket whose client certificate expired is not used",
         old="if (!peer || X509_cmp_time(X509_get0_notAfter(peer), &now) "
             "<= 0) {",
         new="if (!peer) {",
         tests=["unit/test_ctrl"]),
    dict(id="ticket-replay", file="src/ctrl/resume.c",
         what="a ticket is used once (the replay filter)",
         old="\t\tif (s->tag == tag) {\n\t\t\tret = 1;",
         new="\t\tif (0) {\n\t\t\tret = 1;",
         tests=["unit/test_ctrl"]),
    dict(id="mode-policy", file="src/session/handshake.c",
         what="a client below the server's minimum mode is refused",
         old="ENSURE(h->protect >= ctx->cfg.protect, SRDMA_EPOLICY,",
         new="ENSURE(1, SRDMA_EPOLICY,",
         tests=["integration/t_policy"]),
    dict(id="hello-mode", file="src/session/handshake.c",
         what="the client refuses a server HELLO that changes its mode",
         old="ENSURE(h->transport == c->ctx->tp->kind && h->protect == "
             "c->protect,",
         new="ENSURE(h->transport == c->ctx->tp->kind,",
         equivalent="the client keeps its own mode whatever the HELLO says "
                    "and derives keys bound to it (exporter context), so a "
                    "server that chose another mode fails at the first "
                    "record; our server always echoes the client's mode"),

    # ---- limits ----
    dict(id="quota", file="src/session/region.c",
         what="a region past the client's quota is refused",
         old="c->quota_used + r->mem_len > c->ctx->cfg.client_quota) {",
         new="0) {",
         tests=["integration/t_limits"]),
    dict(id="handshake-timeout", file="src/session/lifecycle.c",
         what="set-up that does not finish in time fails",
         old="\t\t    now >= c->deadline_ms) {", new="\t\t    0) {",
         tests=["integration/t_adversary"]),

    # ---- the state machine ----
    dict(id="state-table", file="src/session/state.c",
         what="the transition table",
         old="return from < ST_COUNT && to < ST_COUNT && (t[from] >> to) & 1u;",
         new="return from < ST_COUNT && to < ST_COUNT;",
         tests=["unit/test_state"]),
    dict(id="state-ended", file="src/session/state.c",
         what="an ended connection takes no more steps",
         old="\tif (c->state >= ST_CLOSED)\n\t\treturn false;\n"
             "\tif (rc == 0 && next != c->state)",
         new="\tif (rc == 0 && next != c->state)",
         tests=["unit/test_state"]),

    # ---- writes: the owner's verification (session/channel.c) ----
    dict(id="verify-writer", file="src/session/channel.c",
         what="a verified block was sealed by the peer",
         old="if (bi.writer == peer && bi.version == v->version) {",
         new="if (bi.version == v->version) {",
         tests=FRESH),
    dict(id="verify-version", file="src/session/channel.c",
         what="a verified block carries the notice's version",
         old="if (bi.writer == peer && bi.version == v->version) {",
         new="if (bi.writer == peer) {",
         tests=FRESH),
    dict(id="verify-open", file="src/session/channel.c",
         what="a block must open (authenticate) to be verified",
         old="\tif (rc < 0)\n\t\treturn srdma__err(SRDMA_EINTEGRITY,\n"
             "\t\t\t\t  \"block %llu of region %u failed verification \"",
         new="\tif (0)\n\t\treturn srdma__err(SRDMA_EINTEGRITY,\n"
             "\t\t\t\t  \"block %llu of region %u failed verification \"",
         tests=FRESH + ["integration/t_tamper"]),
    dict(id="notice-bounds", file="src/session/channel.c",
         what="a notice must fit its region",
         old="ENSURE(n[i].offset <= r->len &&\n"
             "\t\t\t       n[i].len <= r->len - n[i].offset,",
         new="ENSURE(1,",
         tests=FRESH),
    dict(id="notice-readonly", file="src/session/channel.c",
         what="no notice for a region the peer may not write",
         old="ENSURE(r->granted && (r->access & SRDMA_ACCESS_REMOTE_WRITE),",
         new="ENSURE(1,",
         tests=FRESH),
    dict(id="notice-replay", file="src/session/channel.c",
         what="notice versions strictly increase per region",
         old="ENSURE(n[i].version > r->peer_last, SRDMA_EREPLAY,",
         new="ENSURE(1, SRDMA_EREPLAY,",
         tests=FRESH),
    dict(id="notice-window", file="src/session/channel.c",
         what="never more announced writes than the window",
         old="ENSURE(c->nverify + k <= c->verify_cap, SRDMA_EPROTO,",
         new="ENSURE(1, SRDMA_EPROTO,",
         tests=["unit/test_state"]),
    dict(id="notice-credit", file="src/session/channel.c",
         what="a notice's credit returns only after verification",
         old="\t\tGUARD(handle_notice(c, rec.payload, rec.len));\n"
             "\t\tcredit = false;\n",
         new="\t\tGUARD(handle_notice(c, rec.payload, rec.len));\n",
         tests=["unit/test_flow", "unit/test_state"]),
    dict(id="notice-unknown", file="src/session/channel.c",
         what="a notice for a region never granted is refused",
         old="ENSURE(n[i].region <= c->next_region_id, SRDMA_EPROTO,",
         new="ENSURE(1, SRDMA_EPROTO,",
         tests=FRESH),

    # ---- the owner's gets and puts (session/region.c) ----
    dict(id="get-exact", file="src/session/region.c",
         what="a get returns only the block's authoritative version",
         old="if (rc == 0 && srdma__bv(bi.writer, bi.version) == r->cur[b])",
         new="if (rc == 0)",
         tests=FRESH),
    dict(id="grant-seal", file="src/session/region.c",
         what="a readable region is sealed whole before its grant",
         old="\tif ((r->access & SRDMA_ACCESS_REMOTE_READ) && sealed(c))\n"
             "\t\tGUARD(seal_unwritten(r));\n",
         new="",
         tests=FRESH),
    dict(id="grant-ids", file="src/session/region.c",
         what="region ids only grow (none granted twice)",
         old="ENSURE(g->region_id > c->max_remote_id, SRDMA_EPROTO,",
         new="ENSURE(1, SRDMA_EPROTO,",
         tests=["unit/test_state"]),

    # ---- reads: what the reader accepts (session/rdma.c) ----
    dict(id="read-exact", file="src/session/rdma.c",
         what="a read accepts only the versions it knows are current",
         old="\t\tif (e ? srdma__bv(bi->writer, bi->version) == e\n"
             "\t\t      : bi->writer == owner && bi->version <= rr->base)\n"
             "\t\t\treturn READ_OK;",
         new="\t\treturn READ_OK;",
         tests=FRESH),
    dict(id="read-race", file="src/session/rdma.c",
         what="a block newer than announced is a race, read again",
         old="\tif (h.writer == owner && h.version > rr->owner_max)\n"
             "\t\treturn READ_NEWER;\n",
         new="",
         tests=["unit/test_state"]),
    dict(id="ack-match", file="src/session/rdma.c",
         what="an acknowledgement counts only writes we announced",
         old="\tENSURE(!left, SRDMA_EPROTO,\n",
         new="\tENSURE(1, SRDMA_EPROTO,\n",
         tests=["unit/test_state"]),
    dict(id="update-range", file="src/session/rdma.c",
         what="an UPDATE must fit the region",
         old="ENSURE(u->first < rr->nblocks && u->count <= rr->nblocks - "
             "u->first,",
         new="ENSURE(1,",
         tests=["unit/test_state"]),

    # ---- memory registrations ----
    dict(id="ofi-readonly", file="src/transport/ofi/ofi.c",
         what="ofi: a read-only region carries no remote-write access",
         old="\tif (access & SRDMA_TP_REMOTE_WRITE)\n\t\tacc |= FI_REMOTE_WRITE;",
         new="\tacc |= FI_REMOTE_WRITE;",
         tests=FRESH),
    dict(id="verbs-readonly", file="src/transport/verbs/mr.c",
         what="verbs: a read-only region carries no remote-write access",
         old="\tif (access & SRDMA_TP_REMOTE_WRITE)\n"
             "\t\tm->mw_access |= IBV_ACCESS_REMOTE_WRITE;",
         new="\tm->mw_access |= IBV_ACCESS_REMOTE_WRITE;",
         vm=True, tests=["bash tests/vm/run.sh ../build"]),
]
