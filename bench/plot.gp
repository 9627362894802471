# Bandwidth against message size, one line per protection mode and baseline.
# Used by bench/run.sh:  gnuplot -e "dir='DATA'; out='PNG'" bench/plot.gp
# DATA holds OP-LABEL.dat files with "size GB/s" rows.
if (!exists("dir")) dir = 'bench/out/plot'
if (!exists("out")) out = 'bench/out/bandwidth.png'

set terminal pngcairo size 1500,520 font ",10" noenhanced
set output out
set logscale x 2
set format x "%.0b%B"
set xlabel "message size (bytes)"
set ylabel "GB/s"
set xrange [48:1.5*1048576]
set yrange [0:*]
set grid
set key top left opaque box
set style data linespoints

f(op, l) = sprintf("%s/%s-%s.dat", dir, op, l)
has(op, l) = system(sprintf("test -s '%s' && echo 1 || echo 0", f(op, l))) + 0

# label:title:style for every series; files that are missing or empty are
# left out of the plot.
series = "srdma-encrypt|srdma encrypt|lw 2 pt 7;" . \
	"srdma-integrity|srdma integrity|lw 2 pt 5;" . \
	"srdma-none|srdma none|lw 2 pt 9;" . \
	"raw_ofi|raw libfabric|lw 2 dt 2 pt 4;" . \
	"raw_ofi_dc|raw libfabric, delivery-complete|lw 1 dt 3 pt 6;" . \
	"tls_tcp|TLS 1.3 over TCP (AES-256-GCM stream)|lw 2 dt 4 pt 8;" . \
	"raw_verbs|raw verbs (VM)|lw 1 dt 5 pt 10;" . \
	"vm-srdma-none|srdma none, verbs (VM)|lw 1 pt 11;" . \
	"vm-srdma-encrypt|srdma encrypt, verbs (VM)|lw 1 pt 12;"
nser = 9
field(s, n) = system(sprintf("printf '%%s' '%s' | cut -d';' -f%d | cut -d'|' -f%d", s, n / 10, n % 10))

set multiplot layout 1,3 title "secure-rdma bandwidth (loopback, libfabric tcp; tls_tcp is a TLS stream)"
do for [op in "write read send"] {
	set title op
	cmd = ""
	do for [i = 1:nser] {
		l = field(series, i * 10 + 1)
		fop = (l eq "tls_tcp") ? "send" : op
		if (has(fop, l) && !(l eq "tls_tcp" && op eq "read")) {
			cmd = cmd . (cmd eq "" ? "" : ", ") . \
				sprintf("'%s' using 1:2 title '%s' %s lc %d", f(fop, l), \
					field(series, i * 10 + 2), field(series, i * 10 + 3), i)
		}
	}
	if (cmd eq "") { cmd = "0 notitle lc rgb 'white'"; set title op . " (no data)" }
	eval("plot " . cmd)
}
unset multiplot
