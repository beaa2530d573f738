#!/usr/bin/env bash
# The docs say what the binary does (issue 12 item 4): the man page lists
# exactly the options the command's --help outputs list (every command's);
# docs/CONFIG.md has one entry per config key the parser knows, each with
# its default and an example that the parser accepts. No mount here.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/aftest.XXXXXX)
trap af_cleanup EXIT

# The commands, as the top-level --help lists them (new ones are covered).
cmds=$("$AF" --help | awk '/^commands:/ { on = 1; next } on && NF == 0 { exit } on { print $1 }')
ok "--help lists the commands ($(echo $cmds))" sh -c "echo '$cmds' | grep -qx mount && echo '$cmds' | grep -qx upgrade"
# Options in --help: the first column of every line that starts with "-".
for c in "" $cmds; do
	"$AF" $c --help
done | grep -E '^ +-' | sed -E 's/^ +//; s/  .*//' |
	grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' | tr -d ' ,' | sort -u >"$T/help.opts"
# Options in the man page: the tag line after each .TP of OPTIONS.
awk '/^\.SH /{ on = ($2 == "OPTIONS") } on && prev == ".TP" { print } { prev = $0 }' \
	"$SRC/docs/artifactfs.1" | sed -E 's/\\-/-/g; s/\\f[BIRP]//g' |
	grep -oE '(^|[ ",])--?[a-zA-Z][a-zA-Z-]*' | tr -d ' ,"' | sort -u >"$T/man.opts"
ok "--help lists options ($(wc -l <"$T/help.opts"))" test -s "$T/help.opts"
ok "the man page lists options ($(wc -l <"$T/man.opts"))" test -s "$T/man.opts"
if ! diff -u "$T/help.opts" "$T/man.opts" >"$T/opts.diff"; then
	sed 's/^/    /' "$T/opts.diff"
fi
ok "the man page's options are exactly those of --help" diff -q "$T/help.opts" "$T/man.opts"
# Each one the binary really takes: a known option never gives "unrecognized".
for o in $(cat "$T/help.opts"); do
	ok "the binary takes $o" sh -c "! '$AF' $o --help 2>&1 | grep -qiE 'unrecognized|invalid option|unknown option'"
done
# And a made-up one is refused (the check above can fail).
ok "a made-up option is refused" sh -c "'$AF' mount --no-such-option 2>&1 | grep -qiE 'unrecognized|invalid option'"

# docs/CONFIG.md: one "### `section.key`" entry per key of policy/config.c.
sed -n '/^static const struct cfg_key cfg_keys\[\] = {/,/^};/p' "$SRC/policy/config.c" |
	grep -oE '\{ "[a-z_]+", "[a-z_]+"' | sed -E 's/\{ "([a-z_]+)", "([a-z_]+)"/\1.\2/' |
	sort -u >"$T/parser.keys"
grep -oE '^### `[a-z_]+\.[a-z_]+`$' "$SRC/docs/CONFIG.md" | tr -d '#` ' | sort >"$T/doc.keys"
ok "the parser has keys ($(wc -l <"$T/parser.keys"))" test -s "$T/parser.keys"
if ! diff -u "$T/parser.keys" "$T/doc.keys" >"$T/keys.diff"; then
	sed 's/^/    /' "$T/keys.diff"
fi
ok "CONFIG.md has one entry per config key, no more" diff -q "$T/parser.keys" "$T/doc.keys"
expect "CONFIG.md has no key twice" "" sh -c "uniq -d '$T/doc.keys'"
# Each entry: a Default: line and an Example: line the parser accepts.
for k in $(cat "$T/doc.keys"); do
	entry=$(awk -v h="### \`$k\`" '$0 == h { on = 1; next } /^##/ { on = 0 } on' "$SRC/docs/CONFIG.md")
	ok "$k: has a default" sh -c "echo \"\$1\" | grep -q '^Default: '" _ "$entry"
	ex=$(echo "$entry" | sed -n 's/^Example: `\(.*\)`$/\1/p')
	printf '[%s]\n%s\n' "${k%%.*}" "$ex" >"$T/example.conf"
	ok "$k: its example is \"${k#*.} = ...\" and the parser takes it" sh -c "
		case '$ex' in '${k#*.} = '*) ;; *) exit 1 ;; esac
		'$AF' check -c '$T/example.conf' 2>&1 | grep -q 'registrations' &&
		! '$AF' check -c '$T/example.conf' 2>&1 | grep -q 'example.conf:'"
done
