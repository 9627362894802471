#!/usr/bin/env bash
# Build (or reuse) the cached Soft-RoCE VM base image:
#   tests/vm/cache/vmlinuz      kernel from Debian's generic linux-image-6.1.0-*-amd64
#   tests/vm/cache/base.cpio    newc initramfs: busybox, /init, kernel modules for
#                               virtio-net + rdma_rxe, rdma-core userspace, iproute2,
#                               and the shared libraries the project's binaries need
#   tests/vm/cache/base.files   list of files in base.cpio (run.sh skips those)
# Idempotent: a key over the kernel package, the host package versions and this
# directory's scripts decides whether anything has to be rebuilt.
#
# Exit status: 0 ready, 2 a prerequisite is unavailable (no kernel package,
# no busybox-static, ...), 1 any other failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VM_CACHE:-$HERE/cache}
ARCH_LIB=/usr/lib/x86_64-linux-gnu

log() { echo "build-image: $*" >&2; }
unavailable() {
	echo "build-image: unavailable: $*" >&2
	exit 2
}
die() {
	echo "build-image: error: $*" >&2
	exit 1
}

# Modules to load, in this order (DESIGN.md section 6). Dependencies found in
# the modules' own "depends=" field are inserted before their users.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
failover net_failover virtio_net udp_tunnel ip6_udp_tunnel configfs crc32_generic
ib_core ib_cm iw_cm rdma_cm ib_uverbs rdma_ucm rdma_rxe dummy veth"

# Host programs copied into the image (with every library ldd lists).
BINARIES="/usr/bin/rdma /usr/sbin/ip /usr/bin/rping /usr/bin/ibv_devices
/usr/bin/ibv_devinfo /usr/bin/ibv_rc_pingpong /usr/bin/ib_send_bw /usr/bin/ib_write_bw
/usr/bin/ib_read_lat /usr/bin/ib_write_lat /usr/bin/udaddy /usr/bin/ucmatose
/usr/bin/rdma_server /usr/bin/rdma_client /usr/bin/openssl /usr/bin/fi_info
/usr/bin/fi_pingpong /usr/bin/strace"

# Libraries the project links against or that are dlopen()ed at run time.
LIBRARIES="libibverbs.so.1 librdmacm.so.1 libfabric.so.1 libssl.so.3 libcrypto.so.3
libnl-3.so.200 libnl-route-3.so.200 libgcc_s.so.1 libpthread.so.0 libdl.so.2
librt.so.1 libm.so.6 libresolv.so.2 libnss_dns.so.2 libnss_files.so.2"

# Host packages whose contents end up in the image: their versions are part of the key.
KEY_PACKAGES="busybox-static libc6 libibverbs1 ibverbs-providers librdmacm1 libfabric1
libssl3 libnl-3-200 libnl-route-3-200 iproute2 ibverbs-utils rdmacm-utils perftest
libfabric-bin openssl"

# --- choose the kernel package -----------------------------------------------

apt_candidates() {
	# Generic-flavour 6.1 kernel packages that have an installation candidate.
	local names
	names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
		grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' || true)
	[ -n "$names" ] || return 0
	# shellcheck disable=SC2086
	apt-cache policy $names 2>/dev/null | awk '
		/^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1) }
		/^  Candidate:/ { if ($2 != "(none)") print pkg }'
}

newest_kernel_pkg() {
	# Highest ABI number; for the same ABI prefer -unsigned (same modules, no
	# signature wrapper).
	apt_candidates | awk '{
		abi = $0; sub(/^linux-image-6\.1\.0-/, "", abi); sub(/-.*/, "", abi)
		unsigned = ($0 ~ /-unsigned$/) ? 1 : 0
		printf "%08d %d %s\n", abi, unsigned, $0 }' |
		sort -k1,1n -k2,2n | tail -n1 | awk '{ print $3 }'
}

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

cached_deb() {
	find "$CACHE/debs" -maxdepth 1 -name 'linux-image-6.1.0-*-amd64*.deb' 2>/dev/null |
		sort -V | tail -n1
}

pick_kernel_deb() {
	if [ -n "${VM_KERNEL_DEB:-}" ]; then
		[ -f "$VM_KERNEL_DEB" ] || unavailable "VM_KERNEL_DEB=$VM_KERNEL_DEB does not exist"
		echo "$VM_KERNEL_DEB"
		return
	fi
	local pkg="" ver="" stamp="" q
	if command -v apt-cache >/dev/null; then
		# Asking apt costs about 2 s; reuse the answer while apt's lists are unchanged.
		stamp=$(stat -c '%Y.%s' /var/lib/apt/lists /var/cache/apt/pkgcache.bin 2>/dev/null | tr '\n' ':' || true)
		q=$(cat "$CACHE/apt-query" 2>/dev/null || true)
		if [ -n "$stamp" ] && [ "${q%% *}" = "$stamp" ]; then
			pkg=$(echo "$q" | cut -d' ' -f2)
			ver=$(echo "$q" | cut -d' ' -f3)
		else
			pkg=$(newest_kernel_pkg)
		fi
		if [ -z "$pkg" ] && [ -z "$(cached_deb)" ]; then
			log "no linux-image-6.1.0-*-amd64 package known to apt; running apt-get update"
			as_root apt-get update -qq >&2 || log "apt-get update failed"
			pkg=$(newest_kernel_pkg)
		fi
	fi
	if [ -z "$pkg" ]; then
		# Offline or not Debian: fall back to whatever was downloaded before.
		local old
		old=$(cached_deb)
		[ -n "$old" ] || unavailable "no linux-image-6.1.0-*-amd64 kernel package in apt (Debian 12 bookworm needed)"
		echo "$old"
		return
	fi
	[ -n "$ver" ] || ver=$(apt-cache policy "$pkg" | awk '/^  Candidate:/ { print $2 }')
	[ -n "$stamp" ] && echo "$stamp $pkg $ver" >"$CACHE/apt-query"
	local want="${pkg}_${ver//:/%3a}_amd64.deb"
	if [ ! -f "$CACHE/debs/$want" ]; then
		mkdir -p "$CACHE/debs"
		log "downloading $pkg $ver"
		if ! (cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >&2); then
			local old
			old=$(cached_deb)
			[ -n "$old" ] || unavailable "apt-get download $pkg failed"
			log "apt-get download $pkg failed; using $(basename "$old")"
			echo "$old"
			return
		fi
		[ -f "$CACHE/debs/$want" ] ||
			want=$(cd "$CACHE/debs" && find . -maxdepth 1 -name "${pkg}_*.deb" -printf '%f\n' | head -n1)
		[ -n "$want" ] || unavailable "apt-get download $pkg produced no .deb"
		# Keep only the newest download.
		find "$CACHE/debs" -maxdepth 1 -name 'linux-image-*.deb' ! -name "$want" -delete
	fi
	echo "$CACHE/debs/$want"
}

# --- helpers for filling the root -------------------------------------------

ROOT=""

# Copy one file (following symlinks) to the same path inside $ROOT, with the
# directory canonicalised so /lib/x -> usr/lib/x (the image is merged-/usr).
put() {
	local src=$1 dir dst
	dir=$(cd "$(dirname "$src")" && pwd -P)
	dst="$ROOT$dir/$(basename "$src")"
	[ -e "$dst" ] && return 0
	mkdir -p "$ROOT$dir"
	cp -L "$src" "$dst"
}

# Copy a binary or library plus everything ldd says it needs.
put_elf() {
	local f=$1 lib
	put "$f"
	while read -r lib; do
		[ -n "$lib" ] && put "$lib"
	done < <(elf_deps "$f")
}

# Library paths (and the loader) an ELF file needs, one per line.
elf_deps() {
	ldd "$1" 2>/dev/null | awk '
		/=> \// { print $3; next }
		/^[ \t]*\// { print $1 }'
}

find_lib() {
	local name=$1 d
	for d in "$ARCH_LIB" /lib/x86_64-linux-gnu /usr/lib64 /lib64; do
		[ -e "$d/$name" ] && {
			echo "$d/$name"
			return 0
		}
	done
	return 1
}

# Emit the load order: seeds in order, each preceded by its unloaded deps.
module_order() {
	local moddir=$1
	declare -A done_=()
	local out=()
	visit() {
		local m=$1 f deps d
		[ -n "${done_[$m]:-}" ] && return 0
		done_[$m]=1
		f=$(module_file "$moddir" "$m") || {
			grep -qE "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" 2>/dev/null && return 0
			die "module $m not found in kernel package"
		}
		deps=$(module_info "$f" | sed -n 's/^depends=//p' | tr ',' ' ')
		for d in $deps; do visit "$d"; done
		out+=("$m")
	}
	local m
	for m in $MODULES; do visit "$m"; done
	printf '%s\n' "${out[@]}"
}

module_file() {
	local moddir=$1 m=$2 f
	f=$(find "$moddir/kernel" -regextype posix-extended \
		-regex ".*/${m//_/[-_]}\.ko(\.xz|\.zst|\.gz)?" -print -quit)
	[ -n "$f" ] && echo "$f"
}

module_info() {
	# The .modinfo section is a list of NUL-terminated key=value strings.
	decompress_ko "$1" | tr '\0' '\n' | grep -a -E '^(depends|vermagic)=' || true
}

decompress_ko() {
	case "$1" in
	*.ko.xz) xz -dc "$1" ;;
	*.ko.zst) zstd -qdc "$1" ;;
	*.ko.gz) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac
}

# Decompress the ELF kernel inside a bzImage (like the kernel's scripts/extract-vmlinux).
extract_vmlinux() {
	local img=$1 magic cmd off
	for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
		cmd=${magic%%:*}
		for off in $(LC_ALL=C grep -obUaP "${magic#*:}" "$img" 2>/dev/null | cut -d: -f1 | head -n3); do
			case "$cmd" in
			xz) tail -c +$((off + 1)) "$img" | xz -dcq --single-stream 2>/dev/null ;;
			zstd) tail -c +$((off + 1)) "$img" | zstd -dcq 2>/dev/null ;;
			gzip) tail -c +$((off + 1)) "$img" | gzip -dcq 2>/dev/null ;;
			esac >"$img.elf" || true
			if [ "$(head -c4 "$img.elf" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
				cat "$img.elf"
				rm -f "$img.elf"
				return 0
			fi
		done
	done
	rm -f "$img.elf"
	return 1
}

make_cpio() {
	# $1 = root dir, $2 = output file. newc, owned by root, stable inode numbers.
	local root=$1 dest=$2
	if command -v cpio >/dev/null; then
		(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
			cpio -o -H newc -R 0:0 --reproducible --quiet) >"$dest"
	else
		(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
			busybox cpio -o -H newc -R 0:0 --ignore-devno --renumber-inodes 2>/dev/null) >"$dest"
	fi
}

# --- main ---------------------------------------------------------------------

build() {
	local deb=$1 key=$2
	local work
	work=$(mktemp -d "$CACHE/.build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT

	log "extracting $(basename "$deb")"
	mkdir -p "$work/pkg"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$work/pkg" --wildcards './boot/vmlinuz-*' './boot/config-*' '*/modules/*' 2>/dev/null ||
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/pkg" ||
		die "cannot extract $deb"
	local vmlinuz moddir kver d
	vmlinuz=$(find "$work/pkg/boot" -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
	[ -n "$vmlinuz" ] || die "no vmlinuz in $deb"
	kver=${vmlinuz##*/vmlinuz-}
	moddir=""
	for d in "$work/pkg/lib/modules/$kver" "$work/pkg/usr/lib/modules/$kver"; do
		[ -d "$d" ] && moddir=$d && break
	done
	[ -n "$moddir" ] || die "no modules for $kver in $deb"

	ROOT="$work/root"
	mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,mnt,var/tmp,srdma/bin}
	mkdir -p "$ROOT"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64}
	ln -s usr/lib "$ROOT/lib"
	ln -s usr/lib64 "$ROOT/lib64"
	chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"

	# Kernel modules, decompressed, flat in /lib/modules/<ver>/ plus the order.
	local mdst="$ROOT/usr/lib/modules/$kver" m f
	mkdir -p "$mdst"
	module_order "$moddir" >"$work/order"
	while read -r m; do
		f=$(module_file "$moddir" "$m")
		decompress_ko "$f" >"$mdst/$m.ko"
	done <"$work/order"
	cp "$work/order" "$mdst/load-order"
	echo "$kver" >"$ROOT/etc/kernel-version"
	log "kernel $kver, modules: $(tr '\n' ' ' <"$work/order")"

	# busybox: one symlink per applet in /bin (iproute2's ip wins over busybox ip).
	local bb
	bb=$(command -v busybox) || unavailable "busybox not installed (apt-get install busybox-static)"
	ldd "$bb" >/dev/null 2>&1 && unavailable "$bb is dynamic; install busybox-static"
	cp "$bb" "$ROOT/bin/busybox"
	for a in $("$bb" --list); do
		case "$a" in busybox | ip | linuxrc) continue ;; esac
		[ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
	done

	# Host userspace.
	local b
	for b in $BINARIES; do
		[ -x "$b" ] || continue
		put_elf "$b"
	done
	for b in rdma ip rping ibv_devices ibv_devinfo; do
		[ -e "$ROOT/usr/bin/$b" ] || [ -e "$ROOT/usr/sbin/$b" ] ||
			unavailable "host program $b missing (apt-get install iproute2 ibverbs-utils rdmacm-utils)"
	done
	local l p
	for l in $LIBRARIES; do
		p=$(find_lib "$l") || continue
		put_elf "$p"
	done
	# The rxe verbs provider and its driver file (libibverbs dlopens it).
	local rxe
	rxe=$(find "$ARCH_LIB/libibverbs" -name 'librxe-rdmav*.so' -print -quit 2>/dev/null || true)
	[ -n "$rxe" ] || unavailable "rxe provider missing (apt-get install ibverbs-providers)"
	put_elf "$rxe"
	mkdir -p "$ROOT/etc/libibverbs.d"
	cp /etc/libibverbs.d/rxe.driver "$ROOT/etc/libibverbs.d/"
	[ -f /etc/rdma/rdma.conf ] && put /etc/rdma/rdma.conf
	# OpenSSL configuration and providers.
	[ -f /etc/ssl/openssl.cnf ] && put /etc/ssl/openssl.cnf
	if [ -d "$ARCH_LIB/ossl-modules" ]; then
		for p in "$ARCH_LIB"/ossl-modules/*.so; do put_elf "$p"; done
	fi

	# /etc basics.
	cat >"$ROOT/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$ROOT/etc/group" <<-'EOF'
		root:x:0:
		nogroup:x:65534:
	EOF
	cat >"$ROOT/etc/hosts" <<-'EOF'
		127.0.0.1 localhost
		10.0.2.15 srdma-vm
		::1 localhost ip6-localhost
	EOF
	echo "hosts: files dns" >"$ROOT/etc/nsswitch.conf"
	echo "srdma-vm" >"$ROOT/etc/hostname"
	: >"$ROOT/etc/resolv.conf"
	printf '/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/libibverbs\n' >"$ROOT/etc/ld.so.conf"
	ldconfig -r "$ROOT" 2>/dev/null || log "ldconfig -r failed (the loader's default paths still work)"

	install -m 0755 "$HERE/init" "$ROOT/init"

	(cd "$ROOT" && find . -mindepth 1 ! -type d | sed 's|^\.||' | LC_ALL=C sort) >"$work/base.files"
	make_cpio "$ROOT" "$work/base.cpio"
	cp "$vmlinuz" "$work/vmlinuz"
	# Booting the uncompressed ELF through its PVH entry skips the firmware's
	# real-mode loader and the in-guest xz decompression: about 4 s less under TCG.
	if grep -q '^CONFIG_PVH=y' "$work/pkg/boot/config-$kver" 2>/dev/null &&
		extract_vmlinux "$vmlinuz" >"$work/vmlinux"; then
		mv -f "$work/vmlinux" "$CACHE/vmlinux"
	else
		rm -f "$CACHE/vmlinux"
		log "no PVH-bootable vmlinux; booting the compressed bzImage"
	fi

	mv -f "$work/vmlinuz" "$CACHE/vmlinuz"
	mv -f "$work/base.files" "$CACHE/base.files"
	mv -f "$work/base.cpio" "$CACHE/base.cpio"
	echo "$key" >"$CACHE/base.key"
	log "base image ready: $(du -h "$CACHE/base.cpio" | cut -f1) initramfs, kernel $kver"
}

main() {
	mkdir -p "$CACHE"
	command -v dpkg-deb >/dev/null || unavailable "dpkg-deb not found (Debian host needed)"
	command -v ldd >/dev/null || unavailable "ldd not found"
	exec 9>"$CACHE/.lock"
	flock 9

	local deb key
	deb=$(pick_kernel_deb)
	# shellcheck disable=SC2086
	key=$({
		basename "$deb"
		dpkg-query -W -f='${Package} ${Version}\n' $KEY_PACKAGES 2>/dev/null || true
		cat "$HERE/build-image.sh" "$HERE/init"
	} | sha256sum | cut -d' ' -f1)
	if [ -f "$CACHE/base.key" ] && [ "$(cat "$CACHE/base.key")" = "$key" ] &&
		[ -f "$CACHE/base.cpio" ] && [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/base.files" ]; then
		[ -n "${VM_VERBOSE:-}" ] && log "cached image is current"
		return 0
	fi
	build "$deb" "$key"
}

main "$@"
