# Shared set-up steps of cwsync's scripts. Each step checks first and only then installs
# or starts what is missing, so running a script twice costs nothing extra.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_HOST=127.0.0.1
PG_PORT=5432
# The Python venv with moto (the SQS emulator of the tests) and, later, the AWS tools.
CWSYNC_VENV="${CWSYNC_VENV:-$ROOT/.venv}"
export CWSYNC_VENV

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

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

pg_up() { pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; }

# A PostgreSQL server on 127.0.0.1:5432 that lets `postgres` in without a password.
ensure_postgres() {
  pg_up && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # A fresh Debian cluster asks for passwords on TCP; the local set-up trusts loopback,
    # as the machines of this team are configured.
    local hba
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  say "starting PostgreSQL"
  local version
  for version in $(ls /etc/postgresql); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  local i
  for i in $(seq 1 60); do
    pg_up && return 0
    sleep 0.5
  done
  echo "PostgreSQL did not come up on $PG_HOST:$PG_PORT" >&2
  exit 1
}

# Debian's Chromium and its WebDriver, for the tests that drive the console in a real
# browser (tests/tests/integration/console); the CJK fonts render its Japanese.
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    && [ -d /usr/share/fonts/opentype/noto ]; then
    return 0
  fi
  say "installing Chromium, chromedriver and the Noto CJK fonts from Debian's packages"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-noto-cjk
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

# Recreates database $1 on the local server and migrates it; prints its URL.
fresh_database() {
  local name="$1" url="postgres://postgres@$PG_HOST:$PG_PORT/$1"
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\"" >/dev/null
  DATABASE_URL="$url" cargo sqlx migrate run --source "$ROOT/migrations" >/dev/null
  echo "$url"
}

drop_database() {
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -q -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# Drops the databases of earlier test runs that were killed before they could clean up:
# those created (the epoch seconds in their name) over three hours ago, so that a test
# run still going next to this one keeps its databases.
drop_stale_test_databases() {
  local name cutoff
  cutoff=$(( $(date +%s) - 3 * 3600 ))
  for name in $(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atq \
      -c "SELECT datname FROM pg_database WHERE datname ~ '^cwsync_test_[0-9]+_' AND split_part(datname, '_', 3)::bigint < $cutoff"); do
    drop_database "$name"
  done
}
