#!/usr/bin/env bash
# Builds the course guide in book/ with a pinned mdBook, into book/book/.
#
#   bash .ci/mdbook.sh        (or: make book)
#
# mdBook is installed with cargo the first time (a few minutes: it compiles from
# source) and reused afterwards: the cargo bin folder is the cache. Only the
# "search" feature is built; "serve" and "watch" pull in an HTTP server and a
# file watcher that a one-shot build does not need. For `mdbook serve`, install
# the full tool yourself: cargo install mdbook --version <the pin below> --locked
#
# The build fails on any mdBook warning, and the guide's links, anchors and day
# chapters are checked first by the Go test in internal/bookcheck.
set -euo pipefail

MDBOOK_VERSION=0.5.4

# Where `cargo install` puts binaries: $CARGO_INSTALL_ROOT/bin if set, else
# $CARGO_HOME/bin, else ~/.cargo/bin.
if [ -n "${CARGO_INSTALL_ROOT:-}" ]; then
	cargo_bin="$CARGO_INSTALL_ROOT/bin"
else
	cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
fi
export PATH="$cargo_bin:$PATH"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(mdbook --version 2>/dev/null || true)" != "mdbook v$MDBOOK_VERSION" ]; then
	if ! command -v cargo >/dev/null; then
		echo "mdbook.sh: mdBook $MDBOOK_VERSION is not installed and cargo is missing; install Rust from https://rustup.rs" >&2
		exit 1
	fi
	echo "mdbook.sh: installing mdBook $MDBOOK_VERSION with cargo (compiles from source; a few minutes the first time)"
	cargo install mdbook --version "$MDBOOK_VERSION" --locked --no-default-features --features search
	got="$("$cargo_bin/mdbook" --version)"
	if [ "$got" != "mdbook v$MDBOOK_VERSION" ]; then
		echo "mdbook.sh: expected mdbook v$MDBOOK_VERSION after installing, got: $got" >&2
		exit 1
	fi
fi

if command -v go >/dev/null; then
	go test -count=1 ./internal/bookcheck
fi

raw="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$raw" "$log"' EXIT
# mdBook logs to stderr. Keep it, without colour codes, to look for warnings
# (written portably: BSD sed on macOS knows neither -i without a suffix nor \x1b).
status=0
mdbook build book >"$raw" 2>&1 || status=$?
esc="$(printf '\033')"
sed "s/${esc}\[[0-9;]*m//g" "$raw" >"$log"
cat "$log"
if [ "$status" -ne 0 ]; then
	echo "mdbook.sh: mdbook build failed (exit $status)" >&2
	exit "$status"
fi
if grep -Eq '^[[:space:]]*(WARN|ERROR)' "$log"; then
	echo "mdbook.sh: mdbook reported warnings (above); the guide must build cleanly" >&2
	exit 1
fi
if [ ! -s book/book/index.html ]; then
	echo "mdbook.sh: book/book/index.html was not written" >&2
	exit 1
fi
echo "mdbook.sh: guide built: book/book/index.html"
