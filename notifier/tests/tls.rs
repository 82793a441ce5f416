//! TLS to the audit database, end to end: the real `drift-notifier` binary against PostgreSQL 15
//! clusters started here (initdb/pg_ctl from DW_PG_BIN, 127.0.0.1, free ports), with `ssl = on`
//! and a server certificate from a test CA made with the `openssl` CLI; a second CA that signed
//! nothing; a cluster with `ssl = off`. Needs DW_PG_BIN (default /usr/lib/postgresql/15/bin), the
//! `openssl` CLI, and the drift_watch extension installed into that PostgreSQL (scripts/test.sh
//! does it). Clusters are stopped and their directories removed when a test ends, pass or fail.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_drift-notifier");
/// The login password: searched for in every stderr.
const PASSWORD: &str = "Tls-Pa55word-3f9c1d";

fn pg_bin() -> PathBuf {
    PathBuf::from(
        std::env::var("DW_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server program, as the postgres user when we are root (Postgres refuses root).
fn as_pg(program: &str) -> Command {
    let path = pg_bin().join(program);
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    };
    c.current_dir("/");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chown_to_postgres(path: &Path) {
    if is_root() {
        check(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(path)
                .output(),
        );
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dw-tls-{name}.{}.{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA, a server certificate it signed (SAN IP:127.0.0.1, DNS:localhost; ECDSA P-256
/// signed with SHA-384, so channel binding hashes with SHA-384), a client certificate it signed
/// (CN drift_cert), and another CA that signed nothing.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
    client_crt: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        check(
            &format!("openssl {}", args.join(" ")),
            Command::new("openssl").current_dir(dir).args(args).output(),
        );
    };
    for (name, cn) in [("ca", "drift-watch test CA"), ("other-ca", "some other CA")] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
        ]);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, cn) in [("server", "localhost"), ("client", "drift_cert")] {
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha384",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }
    chmod(&dir.join("client.key"), 0o600);
    Pki {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
        server_crt: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_crt: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}

/// A PostgreSQL 15 cluster on 127.0.0.1; stopped when dropped.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// initdb + start in `dir`, with `pg_hba.conf` replaced by `hba` and TLS on when `pki` is
    /// given. Roles drift_tls (scram password) and drift_cert, and databases with drift_watch.
    fn start(dir: &Path, pki: Option<&Pki>, hba: &str, databases: &[&str]) -> Cluster {
        std::fs::create_dir_all(dir).unwrap();
        let data = dir.join("data");
        let cluster = Cluster {
            data: data.clone(),
            port: free_port(),
        };
        chown_to_postgres(dir);
        check(
            "initdb",
            as_pg("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
                .arg("--locale=C.UTF-8")
                .output(),
        );
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 40\npassword_encryption = 'scram-sha-256'\n",
            cluster.port,
            dir.display()
        );
        if let Some(pki) = pki {
            for (from, to) in [
                (&pki.server_crt, "server.crt"),
                (&pki.server_key, "server.key"),
                (&pki.ca, "root.crt"),
            ] {
                std::fs::copy(from, data.join(to)).unwrap();
            }
            chmod(&data.join("server.key"), 0o600);
            conf.push_str(
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                 ssl_ca_file = 'root.crt'\n",
            );
        } else {
            conf.push_str("ssl = off\n");
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        chown_to_postgres(&data);
        check(
            "pg_ctl start",
            as_pg("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .output(),
        );
        cluster.psql(
            "postgres",
            &format!(
                "CREATE ROLE drift_tls LOGIN SUPERUSER PASSWORD '{PASSWORD}';
                 CREATE ROLE drift_cert LOGIN SUPERUSER;"
            ),
        );
        for db in databases {
            cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
            let out = cluster.try_psql(
                db,
                "SET client_min_messages = warning; CREATE EXTENSION drift_watch CASCADE;",
            );
            assert!(
                out.status.success(),
                "CREATE EXTENSION drift_watch failed (scripts/test.sh installs the extension \
                 into the system PostgreSQL 15):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster
    }

    fn try_psql(&self, db: &str, sql: &str) -> Output {
        Command::new(pg_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap()
    }

    /// Runs `sql` as postgres; its output, trimmed.
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = as_pg("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

const TLS_HBA: &str = "local all all trust
host all postgres 127.0.0.1/32 trust
hostssl all drift_tls 127.0.0.1/32 scram-sha-256
hostssl all drift_cert 127.0.0.1/32 cert
";

/// The TLS cluster, shared by the tests that run at the same time; torn down by the last one
/// (a test that runs later starts a new one).
struct TlsServer {
    // Dropped in this order: the cluster stops, then its directory goes.
    cluster: Cluster,
    pki: Pki,
    dir: TempDir,
}

fn tls_server() -> Arc<TlsServer> {
    static SHARED: Mutex<Weak<TlsServer>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let dir = TempDir::new("server");
    let pki = make_pki(&dir.0.join("pki"));
    let cluster = Cluster::start(&dir.0.join("pg"), Some(&pki), TLS_HBA, &["audit", "asana"]);
    let server = Arc::new(TlsServer { cluster, pki, dir });
    *shared = Arc::downgrade(&server);
    server
}

impl TlsServer {
    /// A URL for drift_tls with these query parameters.
    fn url(&self, db: &str, params: &str) -> String {
        format!(
            "postgres://drift_tls:{PASSWORD}@127.0.0.1:{}/{db}?{params}",
            self.cluster.port
        )
    }
}

/// The binary with a clean environment: only what the test gives it.
fn notifier(database_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("DATABASE_URL", database_url);
    for var in [
        "ASANA_TOKEN",
        "ASANA_PROJECT",
        "ASANA_SECTION",
        "ASANA_ASSIGNEE",
        "ASANA_BASE_URL",
        "DRIFT_LOG",
        "DRIFT_LOG_FORMAT",
        "PGSSLMODE",
        "PGSSLROOTCERT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A child killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion, killing it after `limit` (then the test fails on its status).
fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.0.kill();
            break child.0.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn run(database_url: &str, args: &[&str]) -> Output {
    run_within(&mut notifier(database_url, args), Duration::from_secs(60))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 2, stderr containing `expected`, and never the password.
fn assert_exit_2(out: &Output, expected: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 ({expected}); stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(expected),
        "stderr lacks {expected:?}:\n{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "the password leaked:\n{stderr}");
    assert!(
        !text(&out.stdout).contains(PASSWORD),
        "the password leaked to stdout"
    );
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains(PASSWORD));
}

/// (a) verify-full against the test CA, with a SCRAM password login and channel_binding=require:
/// `check` succeeds (the login is allowed only by a `hostssl` line), and the sidecar's own
/// backend shows ssl = true in pg_stat_ssl.
#[test]
fn verify_full_with_the_test_ca_connects_over_tls_with_channel_binding() {
    let server = tls_server();
    let ca = server.pki.ca.display().to_string();

    // URL form, an IP address checked against the IP subjectAltName.
    let url = server.url(
        "audit",
        &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    );
    let out = run(&url, &["check"]);
    assert_success(&out);
    assert!(
        text(&out.stdout).contains("of (the audit database): 0 open"),
        "{}",
        text(&out.stdout)
    );

    // key=value form, a DNS name checked against the DNS subjectAltName, quoting and escapes.
    let kv = format!(
        "host=localhost port={} dbname=audit user=drift_tls password='{}' sslmode=verify-full \
         sslrootcert='{ca}' channel_binding=require",
        server.cluster.port,
        PASSWORD.replace('\\', "\\\\").replace('\'', "\\'"),
    );
    assert_success(&run(&kv, &["check"]));

    // The sidecar: find its backend by application_name, from a second connection.
    let app = format!("dw-tls-{}", std::process::id());
    let url = server.url(
        "audit",
        &format!(
            "sslmode=verify-full&sslrootcert={ca}&channel_binding=require&application_name={app}"
        ),
    );
    let log = server.dir.0.join(format!("{app}.log"));
    let mut sidecar = Running(
        notifier(&url, &["run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let query = format!(
        "SELECT s.ssl, s.version, a.usename FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = '{app}'"
    );
    let start = Instant::now();
    let row = loop {
        let row = server.cluster.psql("audit", &query);
        if !row.is_empty() {
            break row;
        }
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            panic!(
                "the sidecar exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sidecar never connected:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let fields: Vec<&str> = row.lines().next().unwrap().split('|').collect();
    assert_eq!(fields[0], "t", "pg_stat_ssl.ssl for the notifier: {row}");
    assert!(fields[1].starts_with("TLSv1."), "{row}");
    assert_eq!(fields[2], "drift_tls", "{row}");
    // It stops on SIGTERM with 0, as ever.
    check(
        "kill",
        Command::new("kill")
            .args(["-TERM", &sidecar.0.id().to_string()])
            .output(),
    );
    let status = sidecar.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("listening on drift_watch"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

/// (b, e) verify-full against a CA that did not sign the server's certificate: exit 2 naming
/// the problem, for one-shot commands and for the sidecar (which must not retry forever). An
/// ordinary refused connection keeps the sidecar reconnecting.
#[test]
fn verify_full_with_another_ca_exits_2_naming_the_certificate_problem() {
    let server = tls_server();
    let other = server.pki.other_ca.display().to_string();
    let url = server.url("audit", &format!("sslmode=verify-full&sslrootcert={other}"));
    let expected =
        format!("TLS: server certificate for 127.0.0.1 is not signed by a CA in {other}");
    assert_exit_2(&run(&url, &["check"]), &expected);
    assert_exit_2(
        &run_within(&mut notifier(&url, &["run"]), Duration::from_secs(30)),
        &expected,
    );
    // The platform's trust store does not hold the test CA either.
    let url = server.url("audit", "sslmode=verify-ca");
    assert_exit_2(
        &run(&url, &["check"]),
        "not signed by a CA in the platform's trust store",
    );

    // Nothing listens on this port: the sidecar keeps trying, and says so.
    let closed = format!(
        "postgres://drift_tls:{PASSWORD}@127.0.0.1:{}/audit?sslmode=verify-full&sslrootcert={other}",
        free_port()
    );
    let out = run_within(&mut notifier(&closed, &["run"]), Duration::from_secs(4));
    assert_eq!(
        out.status.code(),
        None,
        "killed after 4 s, still reconnecting"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

/// verify-ca checks the chain but not the name; verify-full checks both; require checks
/// nothing unless sslrootcert is given (then it is verify-ca, as in libpq).
#[test]
fn each_sslmode_checks_what_libpq_checks() {
    let server = tls_server();
    let port = server.cluster.port;
    let ca = server.pki.ca.display().to_string();
    let other = server.pki.other_ca.display().to_string();
    // hostaddr connects to 127.0.0.1; host is the name the certificate is checked against.
    let kv = |params: &str| {
        format!(
            "host=db.example.invalid hostaddr=127.0.0.1 port={port} dbname=audit user=drift_tls \
             password={PASSWORD} {params}"
        )
    };
    assert_success(&run(
        &kv(&format!("sslmode=verify-ca sslrootcert={ca}")),
        &["check"],
    ));
    assert_exit_2(
        &run(
            &kv(&format!("sslmode=verify-full sslrootcert={ca}")),
            &["check"],
        ),
        "TLS: server certificate is not valid for host db.example.invalid",
    );
    assert_success(&run(&kv("sslmode=require"), &["check"]));
    assert_success(&run(&kv("sslmode=prefer"), &["check"]));
    assert_exit_2(
        &run(
            &kv(&format!("sslmode=require sslrootcert={other}")),
            &["check"],
        ),
        &format!("not signed by a CA in {other}"),
    );
    // TLS is not optional for drift_tls (hostssl): sslmode=disable is turned away by the
    // server, an ordinary failure (exit 1, not a TLS configuration error).
    let out = run(&kv("sslmode=disable"), &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no encryption"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains(PASSWORD));
}

/// sslcert/sslkey: a client certificate login (pg_hba `cert`), and libpq's refusal of a key
/// file others can read.
#[test]
fn client_certificates_log_in_and_open_key_files_are_refused() {
    let server = tls_server();
    let pki = &server.pki;
    let url = format!(
        "postgres://drift_cert@localhost:{}/audit?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        server.cluster.port,
        pki.ca.display(),
        pki.client_crt.display(),
        pki.client_key.display()
    );
    assert_success(&run(&url, &["check"]));
    // Without the certificate, the server turns the login away.
    let without = format!(
        "postgres://drift_cert@localhost:{}/audit?sslmode=verify-full&sslrootcert={}",
        server.cluster.port,
        pki.ca.display()
    );
    let out = run(&without, &["check"]);
    assert!(!out.status.success());

    let open_key = server.dir.0.join("open.key");
    std::fs::copy(&pki.client_key, &open_key).unwrap();
    chmod(&open_key, 0o644);
    let url = url.replace(
        &pki.client_key.display().to_string(),
        &open_key.display().to_string(),
    );
    assert_exit_2(&run(&url, &["check"]), "has group or world access");
}

/// (c) sslmode=require against a server with ssl = off: exit 2, saying so. The default
/// (prefer) falls back to plain TCP there; channel_binding=require cannot be met without TLS.
#[test]
fn sslmode_require_against_a_server_without_tls_exits_2() {
    let dir = TempDir::new("plain");
    let hba = "local all all trust
host all postgres 127.0.0.1/32 trust
host all drift_tls 127.0.0.1/32 scram-sha-256
";
    let cluster = Cluster::start(&dir.0.join("pg"), None, hba, &["audit"]);
    let url = |params: &str| {
        format!(
            "postgres://drift_tls:{PASSWORD}@127.0.0.1:{}/audit?{params}",
            cluster.port
        )
    };
    assert_exit_2(
        &run(&url("sslmode=require"), &["check"]),
        "TLS: the server at 127.0.0.1 does not accept TLS connections, but sslmode=require",
    );
    assert_exit_2(
        &run(&url("sslmode=verify-full"), &["run"]),
        "does not accept TLS connections, but sslmode=verify-full",
    );
    assert_exit_2(
        &run(&url("channel_binding=require"), &["check"]),
        "channel_binding=require, but the server did not use channel binding",
    );
    assert_success(&run(&url(""), &["check"]));
    assert_success(&run(&url("sslmode=disable"), &["check"]));
    drop(cluster);
}

/// (d, e) Malformed strings, unknown sslmodes, unreadable files: exit 2 before any connection
/// (nothing listens on port 1), naming the problem and never the password.
#[test]
fn malformed_connection_strings_exit_2_without_the_password() {
    let dir = TempDir::new("files");
    let not_pem = dir.0.join("not-pem.crt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let p = PASSWORD;
    let cases = [
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslmode=foo"), "invalid sslmode \"foo\""),
        (format!("host=127.0.0.1 port=1 password={p} sslmode=verify_full"), "invalid sslmode \"verify_full\""),
        (format!("host=127.0.0.1 port=1 password={p} channel_binding=always"), "invalid channel_binding \"always\""),
        (format!("postgres://u:{p}%zz@127.0.0.1:1/db"), "invalid percent-encoding in the URL's password"),
        (format!("host=127.0.0.1 port=1 password='{p}"), "unterminated quoted value of \"password\""),
        (format!("host=127.0.0.1 port=1 password={p} {p}"), "a word without \"=\""),
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslmod=require"), "did you mean \"sslmode\""),
        (format!("postgres://u:{p}@127.0.0.1:port/db"), "invalid value for option `port`"),
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"),
         "TLS: cannot read sslrootcert /nonexistent/ca.crt"),
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslmode=verify-ca&sslrootcert={}", not_pem.display()),
         "holds no PEM certificate"),
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslcert=/nonexistent/c.crt&sslkey=/nonexistent/c.key"),
         "TLS: cannot read"),
        (format!("postgres://u:{p}@127.0.0.1:1/db?sslrootcert=system&sslmode=require"),
         "weak sslmode \"require\" may not be used with sslrootcert=system"),
        (format!("mysql://u:{p}@127.0.0.1:1/db"), "unsupported URL scheme"),
    ];
    for (url, expected) in &cases {
        let out = run_within(&mut notifier(url, &["check"]), Duration::from_secs(20));
        assert_exit_2(&out, expected);
        let out = run_within(&mut notifier(url, &["run"]), Duration::from_secs(20));
        assert_exit_2(&out, expected);
    }
}

/// (f) ASANA_BASE_URL must be https, except for a loopback host; the token comes from the
/// environment only; project and section are gids.
#[test]
fn asana_base_url_must_be_https_except_for_loopback() {
    let server = tls_server();
    let url = server.url(
        "asana",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.pki.ca.display()
        ),
    );
    let once = |base: &str, project: &str| {
        let mut cmd = notifier(&url, &["run", "--once"]);
        cmd.env("ASANA_TOKEN", "0/test-token")
            .env("ASANA_PROJECT", project)
            .env("ASANA_BASE_URL", base);
        run_within(&mut cmd, Duration::from_secs(60))
    };
    assert_exit_2(
        &once("http://example.com/api/1.0", "1200000000001"),
        "ASANA_BASE_URL must use https",
    );
    assert_exit_2(&once("ftp://127.0.0.1/", "1200000000001"), "ASANA_BASE_URL");
    assert_exit_2(
        &once("https://app.asana.com/api/1.0", "my-project"),
        "ASANA_PROJECT must be an Asana project gid",
    );
    // Loopback http is fine: nothing is pending in this database, so nothing is sent, and the
    // run succeeds.
    let port = free_port();
    for base in [
        format!("http://127.0.0.1:{port}/api/1.0"),
        format!("http://localhost:{port}/api/1.0"),
        format!("http://[::1]:{port}/api/1.0"),
    ] {
        assert_success(&once(&base, "1200000000001"));
    }
    // There is no flag for the token.
    let out = run(&url, &["run", "--once", "--asana-token", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unexpected argument '--asana-token'"));
}
