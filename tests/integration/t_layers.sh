#!/bin/bash
# Includes only point down. The layers of src/:
#   base                                  bottom: includes only base
#   wire, protect, ctrl, transport        middle: base and its own directory
#   session                               top: anything
# The public header (include/srdma.h) is below them all. A directory not
# named here is reported, so a new one gets a place in this list.
. "$(dirname "$0")/lib.sh"

# allowed FROM TO: may a file of layer FROM include one of layer TO?
allowed() {
	local from=$1 to=$2
	[ "$to" = public ] && return 0
	case $from in
	base) [ "$to" = base ] ;;
	wire | protect | ctrl | transport) [ "$to" = base ] || [ "$to" = "$from" ] ;;
	session) case $to in base | wire | protect | ctrl | transport | session) return 0 ;; esac; return 1 ;;
	*) return 1 ;;
	esac
}

# layer PATH: the layer of a file under src/ (its first directory).
layer() {
	local rel=${1#"$SRC/src/"}
	echo "${rel%%/*}"
}

# Every #include "..." in src/, resolved as the compiler does (the
# including file's directory, then include/ and src/), against the rules.
# Prints each offending line; true if there is none.
includes_point_down() {
	local n=0 bad=0 file num text inc from to target
	while IFS=: read -r file num text; do
		inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$text")
		from=$(layer "$file")
		if [ -e "$(dirname "$file")/$inc" ]; then
			target=$(realpath -m "$(dirname "$file")/$inc")
			to=$(layer "$target")
		elif [ -e "$SRC/include/$inc" ]; then
			to=public
		elif [ -e "$SRC/src/$inc" ]; then
			to=$(layer "$SRC/src/$inc")
		else
			to="(not found)"
		fi
		n=$((n + 1))
		if ! allowed "$from" "$to"; then
			echo "  ${file#"$SRC/"}:$num: $text   ($from -> $to)"
			bad=$((bad + 1))
		fi
	done < <(grep -rn --include='*.[ch]' -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$SRC/src" | sort)
	echo "  $n includes in src/, $bad pointing up or sideways"
	[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

check "includes in src/ only point down" includes_point_down
finish
