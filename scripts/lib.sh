# Shared set-up steps of cwsync's scripts. Each step checks first and only then installs
# or starts what is missing, so running a script twice costs nothing extra.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# What the scripts keep between runs, outside the checkout: the user's own PostgreSQL
# cluster when one is needed (and, in CI, the cargo target and the venv).
CWSYNC_CACHE="${CWSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cwsync}"
# The Python venv with moto (the SQS emulator of the tests) and, later, the AWS tools.
CWSYNC_VENV="${CWSYNC_VENV:-$ROOT/.venv}"
export CWSYNC_VENV

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Whether this script may install system packages: as root, or with sudo.
can_install() { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  if command -v rustup >/dev/null; then
    local have
    have="$(rustup component list --installed 2>/dev/null)"
    for c in rustfmt clippy; do
      grep -q "^$c" <<<"$have" || { say "installing the Rust component $c"; rustup component add "$c"; }
    done
  fi
}

# --- PostgreSQL -------------------------------------------------------------------------
#
# The scripts never change a PostgreSQL they did not create. In order, they use:
#   1. DATABASE_URL, when it is set (it must answer);
#   2. a server on 127.0.0.1:5432 that lets `postgres` in without a password;
#   3. a cluster of the user's own in $CWSYNC_CACHE/postgres/<version>, on a free loopback
#      port, made with the initdb and started with the pg_ctl of whatever PostgreSQL is
#      installed (Debian's /usr/lib/postgresql/*/bin, Homebrew's, Postgres.app's or PATH's),
#      and stopped again at exit by the script that started it (stop_own_postgres).
# PostgreSQL is installed (apt on Debian, Homebrew on macOS) only when none is found.
# CWSYNC_OWN_POSTGRES=1 skips step 2 (to test step 3 next to a running system server).
#
# After ensure_postgres, PG_ADMIN_URL is a URL of the server to create databases from.

PG_ADMIN_URL=""
# The data folder of the user's own cluster when this script started it (to stop it).
PG_STARTED_DIR=""
PG_STARTED_BIN=""

# $1 with its database replaced by $2 (any query string is kept).
url_with_database() {
  local url="${1%%\?*}" query=""
  [[ "$1" == *\?* ]] && query="?${1#*\?}"
  local scheme="${url%%://*}" rest="${url#*://}"
  echo "$scheme://${rest%%/*}/$2$query"
}

# Whether $1 answers a query (PGCONNECT_TIMEOUT keeps a silent host short).
pg_answers() {
  PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

# The folder holding initdb and pg_ctl of an installed PostgreSQL (the newest version
# when several are), or nothing.
pg_bin_dir() {
  local dir candidates=()
  if command -v pg_config >/dev/null; then candidates+=("$(pg_config --bindir 2>/dev/null)"); fi
  # Debian's versioned folders, newest first.
  while IFS= read -r dir; do candidates+=("$dir"); done \
    < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn)
  # Homebrew (Apple silicon, then Intel), Postgres.app.
  for dir in /opt/homebrew/opt/postgresql*/bin /usr/local/opt/postgresql*/bin \
    /opt/homebrew/bin /Applications/Postgres.app/Contents/Versions/latest/bin; do
    candidates+=("$dir")
  done
  if command -v initdb >/dev/null; then candidates+=("$(dirname "$(command -v initdb)")"); fi
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
}

# Installs PostgreSQL's server and client from the system's packages (said out loud).
install_postgres() {
  if command -v apt-get >/dev/null && can_install; then
    say "no PostgreSQL is installed: installing it from Debian's packages (apt-get install postgresql)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  elif command -v brew >/dev/null; then
    say "no PostgreSQL is installed: installing it with Homebrew (brew install postgresql@16)"
    brew install postgresql@16
  else
    echo "No PostgreSQL is installed, and this script cannot install one here." >&2
    echo "Install PostgreSQL (its server: initdb, pg_ctl, postgres; and psql), or set" >&2
    echo "DATABASE_URL to a server that lets you create databases, then run this again." >&2
    exit 1
  fi
}

# Runs a PostgreSQL server program. PostgreSQL refuses to run as root; as root (a
# container, a CI machine) it runs in a user namespace of its own, where it is not root
# but still owns the files it creates in the cache folder.
pg_run() {
  if [ "$(id -u)" = 0 ]; then
    if ! command -v unshare >/dev/null; then
      echo "PostgreSQL cannot run as root, and unshare(1) is missing: run this script as a normal user, or set DATABASE_URL" >&2
      exit 1
    fi
    unshare --user "$@"
  else
    "$@"
  fi
}

# Whether nothing listens on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Starts (creating it first if needed) the user's own cluster; sets PG_ADMIN_URL.
ensure_own_postgres() {
  local bin
  bin="$(pg_bin_dir)"
  if [ -z "$bin" ]; then
    install_postgres
    bin="$(pg_bin_dir)"
    [ -n "$bin" ] || { echo "PostgreSQL was installed, but no initdb and pg_ctl were found" >&2; exit 1; }
  fi
  local version
  version="$("$bin/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')"
  local dir="$CWSYNC_CACHE/postgres/$version"
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "creating a PostgreSQL $version cluster of your own in $dir (trusts loopback connections as postgres)"
    mkdir -p "$CWSYNC_CACHE/postgres"
    rm -rf "$dir"
    pg_run "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-locale >"$CWSYNC_CACHE/postgres/initdb-$version.log" 2>&1 \
      || { cat "$CWSYNC_CACHE/postgres/initdb-$version.log" >&2; exit 1; }
  fi
  local port=""
  if pg_run "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    # Running already (another script of ours started it): its port is in postmaster.pid.
    port="$(sed -n 4p "$dir/postmaster.pid")"
  else
    port="$(cat "$dir/cwsync-port" 2>/dev/null || true)"
    if [ -z "$port" ] || ! port_free "$port"; then
      port=55432
      while ! port_free "$port"; do port=$((port + 1)); done
      echo "$port" >"$dir/cwsync-port"
    fi
    say "starting your own PostgreSQL $version on 127.0.0.1:$port ($dir)"
    if pg_run "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir" start >/dev/null; then
      PG_STARTED_DIR="$dir"
      PG_STARTED_BIN="$bin"
    elif pg_run "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      # Another run started it at the same moment.
      port="$(sed -n 4p "$dir/postmaster.pid")"
    else
      tail -n 20 "$dir/server.log" >&2
      echo "your own PostgreSQL did not start (log: $dir/server.log)" >&2
      exit 1
    fi
  fi
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# Stops the user's own cluster if this script started it (call it from an EXIT trap).
stop_own_postgres() {
  if [ -n "$PG_STARTED_DIR" ]; then
    pg_run "$PG_STARTED_BIN/pg_ctl" -D "$PG_STARTED_DIR" -m fast -w stop >/dev/null 2>&1 || true
    PG_STARTED_DIR=""
  fi
}

# Finds (or makes) the PostgreSQL to use, as described above; sets PG_ADMIN_URL.
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    # Its database may not exist yet (the local runner creates its own): then the
    # server's `postgres` database.
    local fallback
    fallback="$(url_with_database "$DATABASE_URL" postgres)"
    if pg_answers "$DATABASE_URL"; then
      PG_ADMIN_URL="$DATABASE_URL"
    elif pg_answers "$fallback"; then
      PG_ADMIN_URL="$fallback"
    else
      echo "DATABASE_URL is set, but its server does not answer (or refuses the connection)" >&2
      exit 1
    fi
    return 0
  fi
  local system="postgres://postgres@127.0.0.1:5432/postgres"
  if [ "${CWSYNC_OWN_POSTGRES:-}" != 1 ]; then
    if pg_answers "$system"; then
      PG_ADMIN_URL="$system"
      return 0
    fi
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      say "the PostgreSQL on 127.0.0.1:5432 does not let postgres in without a password; using a cluster of your own instead (its configuration is left alone)"
    fi
  fi
  ensure_own_postgres
}

# Chromium and its WebDriver, for the tests that drive the console in a real browser
# (tests/tests/integration/console), with CJK fonts for its Japanese. Installed from
# Debian's packages (or Homebrew's casks on macOS) only when missing; where this script
# cannot install, it says what to install. With $1 = optional, a missing browser is a
# warning (a run of some tests only), not a failure.
ensure_chromium() {
  local browser=""
  for b in chromium chromium-browser google-chrome google-chrome-stable \
    "/Applications/Chromium.app/Contents/MacOS/Chromium" \
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"; do
    if command -v "$b" >/dev/null 2>&1 || [ -x "$b" ]; then browser="$b"; break; fi
  done
  local fonts=yes
  if [ "$(uname -s)" = Linux ] && ! fc-list :lang=ja 2>/dev/null | grep -q .; then fonts=""; fi
  if [ -n "$browser" ] && command -v chromedriver >/dev/null && [ -n "$fonts" ]; then
    return 0
  fi
  if command -v apt-get >/dev/null && can_install; then
    say "installing Chromium, chromedriver and the Noto CJK fonts from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-noto-cjk
  elif command -v brew >/dev/null; then
    say "installing Chromium and chromedriver with Homebrew (brew install --cask chromium chromedriver)"
    brew install --cask chromium chromedriver
  else
    local what="the console tests need Chromium (or Chrome), a chromedriver of the same version on PATH, and a Japanese font; this script cannot install them here (no apt-get with sudo, no Homebrew): install them with your system's packages (e.g. chromium, chromium-driver and fonts-noto-cjk)"
    if [ "${1:-}" = optional ]; then
      say "warning: $what"
      return 0
    fi
    echo "$what" >&2
    exit 1
  fi
}

# A venv with the pinned Python tools (moto's SQS server for the tests).
ensure_venv() {
  local stamp="$CWSYNC_VENV/.cwsync-requirements"
  if [ -x "$CWSYNC_VENV/bin/moto_server" ] && cmp -s "$ROOT/scripts/requirements.txt" "$stamp"; then
    return 0
  fi
  say "preparing the Python venv at $CWSYNC_VENV (moto)"
  python3 -m venv "$CWSYNC_VENV"
  "$CWSYNC_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
  cp "$ROOT/scripts/requirements.txt" "$stamp"
}

# The Rust target of the Lambda functions (arm64, built with cargo-lambda's zig).
ensure_arm64_target() {
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$'; then
    say "installing the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
}

# The function crates (functions/*, but for the shared glue crate).
function_packages() {
  local dir
  for dir in "$ROOT"/functions/*/; do
    [ "$(basename "$dir")" = common ] && continue
    sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n 1
  done
}

SQLX_CLI_VERSION=0.9.0

# sqlx-cli, to check that the committed query data (.sqlx/) matches the code.
ensure_sqlx_cli() {
  if command -v cargo-sqlx >/dev/null && cargo sqlx --version 2>/dev/null | grep -q "$SQLX_CLI_VERSION"; then
    return 0
  fi
  say "installing sqlx-cli $SQLX_CLI_VERSION (once; a few minutes)"
  cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --locked --quiet \
    --no-default-features --features postgres,rustls
}

# Recreates database $1 on the server of ensure_postgres and migrates it; prints its URL.
fresh_database() {
  local name="$1" url
  url="$(url_with_database "$PG_ADMIN_URL" "$1")"
  psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\"" >/dev/null
  DATABASE_URL="$url" cargo sqlx migrate run --source "$ROOT/migrations" >/dev/null
  echo "$url"
}

drop_database() {
  psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# Drops the databases of earlier test runs that were killed before they could clean up:
# those created (the epoch seconds in their name) over three hours ago, so that a test
# run still going next to this one keeps its databases.
drop_stale_test_databases() {
  local name cutoff
  cutoff=$(( $(date +%s) - 3 * 3600 ))
  for name in $(psql "$PG_ADMIN_URL" -Atq \
      -c "SELECT datname FROM pg_database WHERE datname ~ '^cwsync_test_[0-9]+_' AND split_part(datname, '_', 3)::bigint < $cutoff"); do
    drop_database "$name"
  done
}
