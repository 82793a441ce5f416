# Shared shell helpers for drift_watch's scripts: sourced, not run.
# Clusters are real PostgreSQL 15 servers made with initdb in a temporary directory, listening on
# 127.0.0.1 only, run as the `postgres` OS user (Postgres refuses to run as root).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PG_BIN/pg_config}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as the postgres user when we are root; as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# cluster_init DIR PORT [postgresql.conf lines...]: initdb + start.
cluster_init() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir"; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "fsync = off"
    echo "max_connections = 50"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
  cluster_start "$dir"
}

cluster_start() {
  local dir=$1
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -30 "$dir/server.log" >&2; die "could not start the cluster in $dir"; }
}

cluster_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# psql against 127.0.0.1:PORT as postgres, stopping at the first error.
pg() {
  local port=$1; shift
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# A random password for a test login: 24 characters of base64, so it usually holds '+' or '/'
# (which a URL must percent-encode), never a quote or a space.
random_password() { openssl rand -base64 18; }

# Percent-encodes $1 for a URL; `url_encode VALUE /` keeps '/' (for paths in a query string).
url_encode() {
  python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=sys.argv[2]))' "$1" "${2:-}"
}

# tls_make_ca DIR: a throw-away CA (DIR/ca.crt, DIR/ca.key) and a server certificate signed by
# it (DIR/server.crt, DIR/server.key) for 127.0.0.1 and localhost, made with the openssl CLI.
# Keys are 0600, certificates 0644; DIR is 0755 so the postgres user can read ca.crt.
tls_make_ca() {
  local dir=$1
  mkdir -p "$dir"; chmod 755 "$dir"
  (
    umask 077
    cd "$dir"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 \
      -subj "/CN=drift_watch test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "subjectAltName = IP:127.0.0.1, DNS:localhost" \
      "basicConstraints = critical, CA:FALSE" \
      "keyUsage = critical, digitalSignature, keyEncipherment" \
      "extendedKeyUsage = serverAuth" \
      "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid" >server.ext
    openssl x509 -req -sha256 -days 30 -in server.csr -CA ca.crt -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext
    chmod 644 ca.crt server.crt
    openssl verify -CAfile ca.crt server.crt >/dev/null
  ) || die "could not make the test CA in $dir"
}

# tls_install_server TLS_DIR DATA_DIR: server.crt (0644) and server.key (0600) into a data
# directory, owned by the postgres user when we are root (Postgres refuses a key that others can
# read, or that it does not own unless root owns it and it is 0640).
tls_install_server() {
  local tls=$1 data=$2 owner=()
  [ "$(id -u)" = 0 ] && owner=(-o postgres -g "$(id -gn postgres)")
  install "${owner[@]}" -m 0644 "$tls/server.crt" "$data/server.crt"
  install "${owner[@]}" -m 0600 "$tls/server.key" "$data/server.key"
}

# pg_tls_check PORT DB CA: a verify-full connection as postgres succeeds, and the server sees it
# as TLS (pg_stat_ssl).
pg_tls_check() {
  local port=$1 db=$2 ca=$3 ssl
  ssl=$(psql -X -At "postgres://postgres@127.0.0.1:$port/$db?sslmode=verify-full&sslrootcert=$(url_encode "$ca" /)" \
    -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") \
    || die "no verified TLS connection to 127.0.0.1:$port"
  [ "$ssl" = t ] || die "127.0.0.1:$port does not serve TLS"
}
