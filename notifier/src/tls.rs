//! Connections to the audit database: libpq's connection strings (both forms) with libpq's TLS
//! parameters, over rustls.
//!
//! tokio-postgres parses libpq-style strings, but knows neither `sslrootcert`, `sslcert`, `sslkey`
//! nor `sslmode=verify-ca|verify-full`, and brings no TLS of its own. So this module parses the
//! string itself (a `postgres://` URL with percent-decoding, or `key=value` pairs with quoting and
//! backslash escapes), takes the TLS parameters out, hands the rest to `tokio_postgres::Config`,
//! and connects through a rustls connector that verifies the server the way libpq does:
//!
//! | `sslmode`          | encrypted                | certificate chain checked         | host name checked |
//! |--------------------|--------------------------|-----------------------------------|-------------------|
//! | `disable`          | no                       |                                   |                   |
//! | `prefer` (default) | if the server offers TLS | only when `sslrootcert` is given  | no                |
//! | `require`          | yes                      | only when `sslrootcert` is given  | no                |
//! | `verify-ca`        | yes                      | yes                               | no                |
//! | `verify-full`      | yes                      | yes                               | yes (DNS or IP subjectAltName) |
//!
//! A checked chain ends in a CA from `sslrootcert` (a PEM file), or, when it is absent or
//! `system`, in the platform's trust store. `sslcert`/`sslkey` present a client certificate.
//! `channel_binding=require` works over this connector: the stream hands tokio-postgres the
//! `tls-server-end-point` hash of the server's certificate (RFC 5929), so SCRAM-SHA-256-PLUS binds
//! the password exchange to this TLS session.
//!
//! Errors say what is wrong and are split in two: [`ConnectError::Fatal`] (the connection string,
//! a certificate file, or the server's TLS cannot satisfy the string; retrying cannot help) and
//! [`ConnectError::Transient`] (the server is down, refuses, or drops the connection).
//! SECURITY: no message quotes the password. Messages quote only enumerated values (sslmode,
//! channel_binding, ...), file paths and host names, and are scrubbed of the password anyway.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Connection, Socket};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the CA certificates that sign the server's certificate come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// No `sslrootcert`: the platform's trust store, used by verify-ca and verify-full only.
    Unset,
    /// `sslrootcert=system`: the platform's trust store (libpq 16's spelling).
    System,
    /// `sslrootcert=/path`: the PEM certificates in that file.
    File(PathBuf),
}

/// The TLS half of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    pub roots: RootCerts,
    /// `sslcert` and `sslkey`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `sslsni` (default on): send the host name in the handshake.
    pub sni: bool,
    /// `ssl_min_protocol_version` / `ssl_max_protocol_version` (rustls speaks 1.2 and 1.3).
    pub min_tls13: bool,
    pub max_tls12: bool,
    /// `sslnegotiation=direct` (PostgreSQL 17+): TLS from the first byte, ALPN "postgresql".
    pub direct: bool,
}

impl TlsParams {
    /// Whether the server's certificate chain is checked, and against which CAs.
    fn verifies_chain(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || matches!(self.roots, RootCerts::File(_))
    }

    /// How the CAs are named in messages.
    fn roots_description(&self) -> String {
        match &self.roots {
            RootCerts::File(path) => path.display().to_string(),
            RootCerts::System | RootCerts::Unset => "the platform's trust store".to_string(),
        }
    }
}

/// A parsed connection string: tokio-postgres's part and the TLS part.
#[derive(Clone, Debug)]
pub struct ConnectionString {
    pub pg: tokio_postgres::Config,
    pub tls: TlsParams,
    /// Only to scrub messages with.
    password: Option<String>,
}

/// Why a connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The connection string, a certificate file, or the server's TLS cannot work: exit, do not
    /// retry.
    Fatal(String),
    /// The server is unreachable, refuses, or is not ready: retrying may help.
    Transient(String),
}

/// Parses `conn`, builds the TLS configuration (reading the certificate files) and connects.
pub async fn connect(
    conn: &str,
) -> Result<(Client, Connection<Socket, TlsStream<Socket>>), ConnectError> {
    let parsed = ConnectionString::parse(conn)
        .map_err(|e| ConnectError::Fatal(format!("invalid connection string: {e}")))?;
    let scrub = |m: String| parsed.scrub(m);
    let tls = MakeTls::new(&parsed.tls).map_err(|e| ConnectError::Fatal(scrub(e)))?;
    match parsed.pg.connect(tls).await {
        Ok(c) => Ok(c),
        Err(e) => Err(match parsed.classify(&e) {
            ConnectError::Fatal(m) => ConnectError::Fatal(scrub(m)),
            ConnectError::Transient(m) => ConnectError::Transient(scrub(m)),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parameters tokio-postgres takes as they are.
const PASSED_THROUGH: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

/// Parameters this module takes out.
const TLS_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "sslcompression",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

/// libpq parameters that are understood but not supported: named in the error.
const UNSUPPORTED: &[&str] = &[
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "sslcertmode",
    "requiressl",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "requirepeer",
    "require_auth",
    "service",
    "passfile",
    "replication",
    "client_encoding",
    "gssencmode",
    "fallback_application_name",
];

fn is_known(key: &str) -> bool {
    PASSED_THROUGH.contains(&key) || TLS_PARAMS.contains(&key) || UNSUPPORTED.contains(&key)
}

/// A keyword, quoted for a message, if it may be quoted: a known keyword, or a near miss of one
/// (with the suggestion). Any other word is not repeated: in a malformed string (an unquoted
/// value with a space in it) it may be part of a password.
fn quoted_keyword(key: &str) -> Option<String> {
    if is_known(key) {
        return Some(format!("\"{key}\""));
    }
    let (distance, nearest) = PASSED_THROUGH
        .iter()
        .chain(TLS_PARAMS)
        .map(|k| (edit_distance(key, k), *k))
        .min()?;
    (distance <= 2 && key.len() >= 4).then(|| format!("\"{key}\" (did you mean \"{nearest}\"?)"))
}

const QUOTING_HINT: &str = "quote values that contain spaces: key='a b'";

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// An enumerated value for a message: quoted only if it looks like one (never a secret's shape).
fn describe_value(value: &str) -> String {
    if value.len() <= 24
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        format!("\"{value}\"")
    } else {
        "(a value that is not one of them)".to_string()
    }
}

impl ConnectionString {
    /// Parses a libpq connection string: a `postgres://` or `postgresql://` URL, or key=value
    /// pairs. Reads no file. Later settings of a parameter win, as in libpq.
    pub fn parse(conn: &str) -> Result<ConnectionString, String> {
        let pairs = match conn
            .strip_prefix("postgresql://")
            .or_else(|| conn.strip_prefix("postgres://"))
        {
            Some(rest) => parse_url(rest)?,
            None => {
                if let Some((scheme, _)) = conn.split_once("://") {
                    if !scheme.contains(['=', ' ']) {
                        return Err(format!(
                            "unsupported URL scheme {} (expected postgres:// or postgresql://)",
                            describe_value(scheme)
                        ));
                    }
                }
                parse_keyword_value(conn)?
            }
        };
        from_pairs(pairs)
    }

    /// `message` without the password in it.
    fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(p) if p.len() >= 4 && message.contains(p.as_str()) => {
                message.replace(p.as_str(), "********")
            }
            _ => message,
        }
    }

    /// The host names, for messages.
    fn hosts(&self) -> String {
        let hosts: Vec<String> = if self.pg.get_hosts().is_empty() {
            self.pg
                .get_hostaddrs()
                .iter()
                .map(IpAddr::to_string)
                .collect()
        } else {
            self.pg
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    #[cfg(unix)]
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect()
        };
        hosts.join(", ")
    }

    /// Sorts a failed connection into fatal and transient, with a message that says why.
    fn classify(&self, e: &tokio_postgres::Error) -> ConnectError {
        use std::error::Error as _;
        if let Some(db) = e.as_db_error() {
            let mut message = db.message().to_string();
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" ({hint})"));
            }
            // The server saw another TLS session than ours (something in between terminates
            // TLS), or cannot bind to it: not a thing to retry.
            if message.contains("channel binding") {
                return ConnectError::Fatal(format!("TLS: {message}"));
            }
            // Otherwise the server answered: a wrong password, a missing database, too many
            // connections, a server starting up. The reconnect loop's business, as before.
            return ConnectError::Transient(message);
        }
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(failure) = s.downcast_ref::<TlsFailure>() {
                return if failure.fatal {
                    ConnectError::Fatal(failure.message.clone())
                } else {
                    ConnectError::Transient(failure.message.clone())
                };
            }
            source = s.source();
        }
        let top = e.to_string();
        let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
        let full = if cause.is_empty() {
            top.clone()
        } else {
            format!("{top}: {cause}")
        };
        // tokio-postgres's error kinds are not public; its messages for them are stable.
        if top.starts_with("error performing TLS handshake") {
            let hosts = self.hosts();
            let mode = self.tls.mode.name();
            return ConnectError::Fatal(if cause == "server does not support TLS" {
                format!(
                    "TLS: the server at {hosts} does not accept TLS connections, but sslmode={mode} \
                     (turn ssl on in its postgresql.conf, or lower sslmode)"
                )
            } else {
                format!("TLS: {cause}")
            });
        }
        if top.starts_with("authentication error") {
            return ConnectError::Fatal(if cause.contains("channel binding") {
                "channel_binding=require, but the server did not use channel binding (that needs \
                 scram-sha-256 password authentication over TLS)"
                    .to_string()
            } else {
                full
            });
        }
        if top.starts_with("invalid configuration") || top.starts_with("invalid connection string")
        {
            return ConnectError::Fatal(if cause == "password missing" {
                "the server asks for a password, and the connection string has none".to_string()
            } else {
                full
            });
        }
        ConnectError::Transient(full)
    }
}

/// key=value pairs, as libpq's conninfo_parse reads them: whitespace around `=` is allowed; a
/// value is a run of non-whitespace or a single-quoted string, and a backslash escapes the next
/// character in either.
fn parse_keyword_value(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_ws(&mut chars);
        if key.is_empty() {
            return Err("a \"=\" without a parameter name before it".into());
        }
        if chars.next() != Some('=') {
            return Err(match quoted_keyword(&key) {
                Some(key) => format!("missing \"=\" after {key}"),
                None if pairs.is_empty() => {
                    "expected a postgres:// or postgresql:// URL, or key=value pairs".to_string()
                }
                None => format!("a word without \"=\" ({QUOTING_HINT})"),
            });
        }
        skip_ws(&mut chars);
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => break,
                    },
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!(
                    "unterminated quoted value of {}",
                    quoted_keyword(&key).unwrap_or_else(|| "a parameter".into())
                ));
            }
            pairs.push((key, value));
            continue;
        }
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// A URL, as libpq's conninfo_uri_parse_options reads it (after the scheme):
/// `[user[:password]@][host][:port][,host[:port]...][/dbname][?param=value&...]`, every part
/// percent-decoded, IPv6 addresses in brackets.
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut s = rest;
    // Credentials: up to an '@' that comes before any '/'.
    if let Some(at) = s.find(['@', '/']).filter(|&i| s.as_bytes()[i] == b'@') {
        let credentials = &s[..at];
        s = &s[at + 1..];
        let (user, password) = match credentials.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (credentials, None),
        };
        pairs.push(("user".into(), percent_decode(user, "user name")?));
        if let Some(p) = password {
            pairs.push(("password".into(), percent_decode(p, "password")?));
        }
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    loop {
        let host = if let Some(bracketed) = s.strip_prefix('[') {
            let end = bracketed
                .find(']')
                .ok_or("missing \"]\" after an IPv6 host address in the URL")?;
            if end == 0 {
                return Err("an empty IPv6 host address \"[]\" in the URL".into());
            }
            s = &bracketed[end + 1..];
            bracketed[..end].to_string()
        } else {
            let end = s.find([':', '/', '?', ',']).unwrap_or(s.len());
            let host = percent_decode(&s[..end], "host")?;
            s = &s[end..];
            host
        };
        let mut port = String::new();
        if let Some(after) = s.strip_prefix(':') {
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            port = percent_decode(&after[..end], "port")?;
            s = &after[end..];
        }
        hosts.push(host);
        ports.push(port);
        match s.strip_prefix(',') {
            Some(after) => s = after,
            None => break,
        }
    }
    if !(s.is_empty() || s.starts_with('/') || s.starts_with('?')) {
        return Err("unexpected character after the host part of the URL".into());
    }
    if hosts.len() > 1 && hosts.iter().any(String::is_empty) {
        return Err("an empty host name in the URL's list of hosts".into());
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push(("port".into(), ports.join(",")));
    }
    if let Some(after) = s.strip_prefix('/') {
        let end = after.find('?').unwrap_or(after.len());
        let dbname = percent_decode(&after[..end], "database name")?;
        if !dbname.is_empty() {
            pairs.push(("dbname".into(), dbname));
        }
        s = &after[end..];
    }
    if let Some(query) = s.strip_prefix('?') {
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or("a URL query parameter without \"=\"")?;
            let key = percent_decode(key, "query parameter name")?;
            if value.contains('=') {
                return Err(format!(
                    "a second \"=\" in the URL query parameter {} (percent-encode it as %3D)",
                    quoted_keyword(&key).unwrap_or_default()
                ));
            }
            let value = percent_decode(value, "query parameter value")?;
            if key == "ssl" {
                // libpq's JDBC-compatible spelling.
                if value != "true" {
                    return Err("invalid value for \"ssl\" (only ssl=true, meaning sslmode=require, is accepted)".into());
                }
                pairs.push(("sslmode".into(), "require".into()));
            } else {
                pairs.push((key, value));
            }
        }
    }
    Ok(pairs)
}

fn percent_decode(s: &str, what: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(format!("invalid percent-encoding in the URL's {what}"));
            };
            let byte = (hi * 16 + lo) as u8;
            if byte == 0 {
                return Err(format!("%00 in the URL's {what}"));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the URL's {what} is not UTF-8 once decoded"))
}

fn from_pairs(pairs: Vec<(String, String)>) -> Result<ConnectionString, String> {
    // Later settings win; an empty value means "not set", as in libpq.
    let mut settings: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        if !is_known(&key) {
            return Err(match quoted_keyword(&key) {
                Some(key) => format!("unknown connection parameter {key}"),
                None => format!("an unknown connection parameter ({QUOTING_HINT})"),
            });
        }
        settings.retain(|(k, _)| *k != key);
        if !value.is_empty() {
            settings.push((key, value));
        }
    }
    // libpq's fallback_application_name: the name when none is given.
    if !settings.iter().any(|(k, _)| k == "application_name") {
        if let Some((_, fallback)) = settings
            .iter()
            .find(|(k, _)| k == "fallback_application_name")
        {
            let fallback = fallback.clone();
            settings.push(("application_name".into(), fallback));
        }
    }
    let take = |key: &str| -> Option<String> {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };

    for key in UNSUPPORTED {
        let Some(value) = take(key) else { continue };
        let harmless = match *key {
            "gssencmode" => value == "disable" || value == "prefer",
            "client_encoding" => value.eq_ignore_ascii_case("utf8") || value == "auto",
            "fallback_application_name" => true,
            _ => false,
        };
        if !harmless {
            return Err(format!(
                "the connection parameter \"{key}\" is not supported by drift-notifier"
            ));
        }
    }

    let mode_given = take("sslmode");
    let mut mode = match mode_given.as_deref() {
        None => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        // libpq's "allow" tries without TLS first; tokio-postgres cannot, and "prefer" is never
        // less safe.
        Some("allow") | Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(format!(
                "invalid sslmode {} (expected disable, allow, prefer, require, verify-ca or verify-full)",
                describe_value(other)
            ))
        }
    };
    let roots = match take("sslrootcert").as_deref() {
        None => RootCerts::Unset,
        Some("system") => {
            // libpq 16: the platform's CAs prove nothing about a server whose name is not
            // checked, so only verify-full goes with them (and is their default).
            match mode_given {
                None => mode = SslMode::VerifyFull,
                Some(_) if mode == SslMode::VerifyFull => {}
                Some(_) => {
                    return Err(format!(
                    "weak sslmode \"{}\" may not be used with sslrootcert=system (use verify-full)",
                    mode.name()
                ))
                }
            }
            RootCerts::System
        }
        Some(path) => RootCerts::File(PathBuf::from(path)),
    };
    let client_cert = match (take("sslcert"), take("sslkey")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => return Err("sslcert is set but sslkey is not".into()),
        (None, Some(_)) => return Err("sslkey is set but sslcert is not".into()),
    };
    let flag = |key: &str, default: bool| -> Result<bool, String> {
        match take(key).as_deref() {
            None => Ok(default),
            Some("1") => Ok(true),
            Some("0") => Ok(false),
            Some(other) => Err(format!(
                "invalid {key} {} (expected 0 or 1)",
                describe_value(other)
            )),
        }
    };
    let sni = flag("sslsni", true)?;
    flag("sslcompression", false)?; // Accepted and ignored, as by libpq with OpenSSL 1.1+.
    let version = |key: &str| -> Result<Option<u8>, String> {
        match take(key).as_deref() {
            None => Ok(None),
            Some("TLSv1") => Ok(Some(10)),
            Some("TLSv1.1") => Ok(Some(11)),
            Some("TLSv1.2") => Ok(Some(12)),
            Some("TLSv1.3") => Ok(Some(13)),
            Some(other) => Err(format!(
                "invalid {key} {} (expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
                describe_value(other)
            )),
        }
    };
    let min = version("ssl_min_protocol_version")?.unwrap_or(12);
    let max = version("ssl_max_protocol_version")?.unwrap_or(13);
    if max < 12 {
        return Err(
            "ssl_max_protocol_version below TLSv1.2: only TLS 1.2 and 1.3 are supported".into(),
        );
    }
    if min > max {
        return Err("ssl_min_protocol_version is above ssl_max_protocol_version".into());
    }
    let channel_binding = take("channel_binding");
    match channel_binding.as_deref() {
        None | Some("disable") | Some("prefer") => {}
        Some("require") if mode == SslMode::Disable => {
            return Err("channel_binding=require needs TLS, but sslmode=disable".into())
        }
        Some("require") => {}
        Some(other) => {
            return Err(format!(
                "invalid channel_binding {} (expected disable, prefer or require)",
                describe_value(other)
            ))
        }
    }
    let direct = match take("sslnegotiation").as_deref() {
        None | Some("postgres") => false,
        Some("direct") if matches!(mode, SslMode::Disable | SslMode::Prefer) => {
            return Err("sslnegotiation=direct needs sslmode=require or stronger".into())
        }
        Some("direct") => true,
        Some(other) => {
            return Err(format!(
                "invalid sslnegotiation {} (expected postgres or direct)",
                describe_value(other)
            ))
        }
    };
    // The rest goes to tokio-postgres, re-quoted.
    let mut rest = String::new();
    for (key, value) in &settings {
        if !PASSED_THROUGH.contains(&key.as_str()) {
            continue;
        }
        rest.push_str(key);
        rest.push_str("='");
        for c in value.chars() {
            if c == '\'' || c == '\\' {
                rest.push('\\');
            }
            rest.push(c);
        }
        rest.push_str("' ");
    }
    let mut pg: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        use std::error::Error as _;
        // tokio-postgres names the parameter, never its value.
        e.source().map_or_else(|| e.to_string(), |s| s.to_string())
    })?;

    let hosts = pg.get_hosts().len();
    let hostaddrs = pg.get_hostaddrs().len();
    if hosts == 0 && hostaddrs == 0 {
        return Err("no host: name one in the URL (postgres://HOST/db) or with host=".into());
    }
    if hosts > 0 && hostaddrs > 0 && hosts != hostaddrs {
        return Err(format!(
            "{hosts} hosts but {hostaddrs} hostaddrs: give one hostaddr per host"
        ));
    }
    let ports = pg.get_ports().len();
    if ports > 1 && ports != hosts.max(hostaddrs) {
        return Err(format!(
            "{ports} ports for {} hosts: give one port, or one per host",
            hosts.max(hostaddrs)
        ));
    }
    #[cfg(unix)]
    let all_unix = hosts > 0 && pg.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
    #[cfg(not(unix))]
    let all_unix = false;
    if hosts == 0 && mode != SslMode::Disable {
        // tokio-postgres does TLS only with a host name; libpq needs none for the modes that do
        // not check it. The address stands in for it.
        if mode == SslMode::VerifyFull {
            return Err(
                "sslmode=verify-full needs host= (the name the server certificate must carry); hostaddr alone is not enough"
                    .into(),
            );
        }
        for addr in pg.get_hostaddrs().to_vec() {
            pg.host(addr.to_string());
        }
    }
    pg.ssl_mode(match mode {
        // libpq never uses TLS over a Unix socket, whatever sslmode says.
        _ if all_unix => tokio_postgres::config::SslMode::Disable,
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    Ok(ConnectionString {
        pg,
        tls: TlsParams {
            mode,
            roots,
            client_cert,
            sni,
            min_tls13: min >= 13,
            max_tls12: max <= 12,
            direct,
        },
        password,
    })
}

// ---------------------------------------------------------------------------------------------
// The rustls configuration
// ---------------------------------------------------------------------------------------------

/// The rustls client configuration for `params`, or `None` for sslmode=disable. Reads the
/// certificate files.
pub fn client_config(params: &TlsParams) -> Result<Option<Arc<ClientConfig>>, String> {
    if params.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = if params.verifies_chain() {
        Some(Arc::new(root_store(&params.roots)?))
    } else {
        None
    };
    let verifier = Arc::new(Verifier {
        roots,
        check_name: params.mode == SslMode::VerifyFull,
        algorithms: provider.signature_verification_algorithms,
    });
    let versions: &[&rustls::SupportedProtocolVersion] = match (params.min_tls13, params.max_tls12)
    {
        (true, _) => &[&rustls::version::TLS13],
        (false, true) => &[&rustls::version::TLS12],
        (false, false) => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &params.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let certs = read_certs(cert_path, "sslcert")?;
            let key = read_key(key_path)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                format!(
                    "TLS: sslcert {} and sslkey {} do not make a usable client certificate: {e}",
                    cert_path.display(),
                    key_path.display()
                )
            })?
        }
    };
    config.enable_sni = params.sni;
    if params.direct {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(Some(Arc::new(config)))
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            for (i, cert) in read_certs(path, "sslrootcert")?.into_iter().enumerate() {
                store.add(cert).map_err(|e| {
                    format!(
                        "TLS: certificate {} in sslrootcert {} is not a usable CA: {e}",
                        i + 1,
                        path.display()
                    )
                })?;
            }
        }
        RootCerts::System | RootCerts::Unset => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "TLS: no CA certificates found in the platform's trust store{why}; set sslrootcert to a PEM file of CA certificates"
                ));
            }
        }
    }
    Ok(store)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("TLS: cannot read {what} {}: {e}", path.display()))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS: {what} {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS: {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    check_key_permissions(path)?;
    let pem = read_file(path, "sslkey")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "TLS: sslkey {} holds no usable PEM private key: {e}",
            path.display()
        )
    })
}

/// libpq's rule: a private key readable by others is refused.
#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("TLS: cannot read sslkey {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "TLS: sslkey {} is not a regular file",
            path.display()
        ));
    }
    let mode = meta.mode();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let too_open = if meta.uid() == euid {
        mode & 0o077 != 0
    } else if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        false
    };
    if too_open {
        return Err(format!(
            "TLS: sslkey {} has group or world access; it must be u=rw (0600) or less if owned by \
             the current user, or u=rw,g=r (0640) or less if owned by root",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Checks the server's certificate as the sslmode says. Handshake signatures are always checked
/// (they prove the server holds the key of the certificate it sent).
#[derive(Debug)]
struct Verifier {
    /// None: any certificate (prefer and require without sslrootcert, as libpq).
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// The tokio-postgres connector
// ---------------------------------------------------------------------------------------------

/// A TLS failure, with its message, and whether retrying is pointless.
#[derive(Debug, Clone)]
pub struct TlsFailure {
    message: String,
    fatal: bool,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsFailure {}

/// tokio-postgres's `MakeTlsConnect` over rustls.
#[derive(Clone)]
pub struct MakeTls {
    config: Option<Arc<ClientConfig>>,
    check_name: bool,
    roots: Arc<str>,
}

impl MakeTls {
    pub fn new(params: &TlsParams) -> Result<MakeTls, String> {
        Ok(MakeTls {
            config: client_config(params)?,
            check_name: params.mode == SslMode::VerifyFull,
            roots: params.roots_description().into(),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = TlsConnector;
    type Error = TlsFailure;

    /// Called for every host, also Unix sockets ("") and with TLS off: never fails here.
    fn make_tls_connect(&mut self, host: &str) -> Result<TlsConnector, TlsFailure> {
        let name = match ServerName::try_from(host.to_string()) {
            Ok(name) => Ok(name),
            // Any name will do when it is not checked; an IP address sends no SNI.
            Err(_) if !self.check_name => Ok(ServerName::IpAddress(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(),
            )),
            Err(_) => Err(format!(
                "TLS: host \"{host}\" is neither a DNS name nor an IP address, so sslmode=verify-full cannot check the server certificate against it"
            )),
        };
        Ok(TlsConnector {
            config: self.config.clone(),
            name,
            host: host.to_string(),
            roots: self.roots.clone(),
        })
    }
}

/// One TLS handshake.
pub struct TlsConnector {
    config: Option<Arc<ClientConfig>>,
    name: Result<ServerName<'static>, String>,
    host: String,
    roots: Arc<str>,
}

impl<S> TlsConnect<S> for TlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsFailure;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsFailure>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let fatal = |message: String| TlsFailure {
                message,
                fatal: true,
            };
            let config = self
                .config
                .ok_or_else(|| fatal("TLS: requested with sslmode=disable".into()))?;
            let name = self.name.map_err(fatal)?;
            tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map(TlsStream)
                .map_err(|e| handshake_failure(&e, &self.host, &self.roots))
        })
    }
}

/// What a failed handshake means, in words.
fn handshake_failure(e: &io::Error, host: &str, roots: &str) -> TlsFailure {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        // The connection broke during the handshake: like any dropped connection.
        return TlsFailure {
            message: format!("TLS handshake with {host} interrupted: {e}"),
            fatal: false,
        };
    };
    let message = match tls {
        E::InvalidCertificate(C::UnknownIssuer) => {
            format!("server certificate for {host} is not signed by a CA in {roots}")
        }
        E::InvalidCertificate(C::BadSignature) => format!(
            "server certificate for {host} has a signature that no CA in {roots} made"
        ),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "server certificate is not valid for host {host} (sslmode=verify-full checks the \
             host against its subjectAltName DNS names and IP addresses)"
        ),
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("server certificate for {host} has expired")
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            format!("server certificate for {host} is not valid yet")
        }
        E::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => format!(
            "server certificate for {host} is not for TLS servers (extendedKeyUsage lacks serverAuth)"
        ),
        E::InvalidCertificate(other) => {
            format!("server certificate for {host} was rejected: {other:?}")
        }
        E::AlertReceived(alert) => format!(
            "the server at {host} refused the TLS handshake ({alert:?}); if it requires a client \
             certificate, set sslcert and sslkey"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    };
    TlsFailure {
        message: format!("TLS: {message}"),
        fatal: true,
    }
}

/// A TLS connection to the server, which tells tokio-postgres its channel binding data.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S> AsyncRead for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------
// tls-server-end-point (RFC 5929 §4.1)
// ---------------------------------------------------------------------------------------------

/// The hash of the server's DER certificate with the hash of its signature algorithm (MD5 and
/// SHA-1 become SHA-256), as PostgreSQL computes it; None for algorithms without one (Ed25519,
/// RSA-PSS), for which PostgreSQL offers no channel binding either.
fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    let oid = signature_algorithm(cert)?;
    // Object identifier contents (DER, without tag and length).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]; // 1.2.840.10045.4.1
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03]; // 1.2.840.10045.4.3
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03]; // 1.2.840.10040.4.3
    enum H {
        S224,
        S256,
        S384,
        S512,
    }
    let hash = if let Some(last) = oid.strip_prefix(RSA) {
        match last {
            [4] | [5] | [11] => H::S256, // md5, sha1, sha256 WithRSAEncryption
            [12] => H::S384,
            [13] => H::S512,
            [14] => H::S224,
            _ => return None,
        }
    } else if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
        H::S256
    } else if let Some(last) = oid.strip_prefix(ECDSA_SHA2) {
        match last {
            [1] => H::S224,
            [2] => H::S256,
            [3] => H::S384,
            [4] => H::S512,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match hash {
        H::S224 => sha2::Sha224::digest(cert).to_vec(),
        H::S256 => sha2::Sha256::digest(cert).to_vec(),
        H::S384 => sha2::Sha384::digest(cert).to_vec(),
        H::S512 => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The OID of `Certificate.signatureAlgorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, BIT STRING }`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = der(cert, 0x30)?;
    let (_tbs, rest) = der(certificate, 0x30)?;
    let (algorithm, _) = der(rest, 0x30)?;
    let (oid, _) = der(algorithm, 0x06)?;
    Some(oid)
}

/// One DER element with tag `tag` at the start of `input`: its contents and what follows.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ConnectionString {
        ConnectionString::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> String {
        match ConnectionString::parse(s) {
            Ok(c) => panic!("{s}: parsed as {c:?}"),
            Err(e) => e,
        }
    }

    fn tcp_hosts(c: &ConnectionString) -> Vec<String> {
        c.pg.get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => format!("unix:{}", p.display()),
            })
            .collect()
    }

    #[test]
    fn url_with_every_part() {
        let c = parse(
            "postgresql://drift%20user:p%40ss%2Fw%3Ard@db.internal:6432/au%64it\
             ?sslmode=verify-full&sslrootcert=/etc/ca%20dir/root.crt&application_name=dw&channel_binding=require",
        );
        assert_eq!(c.pg.get_user(), Some("drift user"));
        assert_eq!(c.pg.get_password(), Some(&b"p@ss/w:rd"[..]));
        assert_eq!(c.pg.get_dbname(), Some("audit"));
        assert_eq!(tcp_hosts(&c), ["db.internal"]);
        assert_eq!(c.pg.get_ports(), [6432]);
        assert_eq!(c.pg.get_application_name(), Some("dw"));
        assert_eq!(
            c.pg.get_channel_binding(),
            tokio_postgres::config::ChannelBinding::Require
        );
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(c.tls.roots, RootCerts::File("/etc/ca dir/root.crt".into()));
        assert_eq!(
            c.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn url_hosts_ports_and_ipv6() {
        let c = parse("postgres://u@[::1]:5433,127.0.0.1,db:7/x");
        assert_eq!(tcp_hosts(&c), ["::1", "127.0.0.1", "db"]);
        assert_eq!(c.pg.get_ports(), [5433, 5432, 7]);
        let c = parse("postgres://%2Fvar%2Frun%2Fpostgresql/audit?sslmode=require");
        assert_eq!(tcp_hosts(&c), ["unix:/var/run/postgresql"]);
        // libpq never uses TLS over a Unix socket.
        assert_eq!(
            c.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let c = parse("postgres:///audit?host=127.0.0.1&port=5999&user=me");
        assert_eq!(tcp_hosts(&c), ["127.0.0.1"]);
        assert_eq!(c.pg.get_ports(), [5999]);
        assert_eq!(c.pg.get_user(), Some("me"));
    }

    #[test]
    fn url_query_overrides_and_ssl_true() {
        let c = parse("postgres://a@h1/db?host=h2&ssl=true");
        assert_eq!(tcp_hosts(&c), ["h2"]);
        assert_eq!(c.tls.mode, SslMode::Require);
    }

    #[test]
    fn default_is_prefer_without_verification() {
        let c = parse("postgres://u@127.0.0.1/db");
        assert_eq!(c.tls.mode, SslMode::Prefer);
        assert!(!c.tls.verifies_chain());
        assert_eq!(c.pg.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        let c = parse("host=127.0.0.1 sslmode=disable");
        assert_eq!(
            c.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn require_with_a_root_cert_checks_the_chain_like_libpq() {
        let c = parse("host=h sslmode=require");
        assert!(!c.tls.verifies_chain());
        let c = parse("host=h sslmode=require sslrootcert=/ca.crt");
        assert!(c.tls.verifies_chain());
        let c = parse("host=h sslmode=verify-ca");
        assert!(c.tls.verifies_chain());
        assert_eq!(c.tls.roots, RootCerts::Unset);
    }

    #[test]
    fn sslrootcert_system() {
        let c = parse("host=h sslrootcert=system");
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(c.tls.roots, RootCerts::System);
        let e = error("host=h sslrootcert=system sslmode=require");
        assert!(e.contains("weak sslmode \"require\""), "{e}");
    }

    #[test]
    fn keyword_value_quoting_and_escapes() {
        let c = parse(
            r"host = 127.0.0.1 port=5433 dbname='my db' password='it\'s a \\ secret' user=a\ b
              sslmode=verify-ca sslcert=/c.crt sslkey='/k e y.pem' options='-c statement_timeout=5s'",
        );
        assert_eq!(tcp_hosts(&c), ["127.0.0.1"]);
        assert_eq!(c.pg.get_ports(), [5433]);
        assert_eq!(c.pg.get_dbname(), Some("my db"));
        assert_eq!(c.pg.get_password(), Some(&br"it's a \ secret"[..]));
        assert_eq!(c.pg.get_user(), Some("a b"));
        assert_eq!(c.pg.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(c.tls.mode, SslMode::VerifyCa);
        assert_eq!(
            c.tls.client_cert,
            Some(("/c.crt".into(), "/k e y.pem".into()))
        );
    }

    #[test]
    fn later_settings_win_and_empty_means_unset() {
        let c = parse("host=a host=b sslmode=verify-full sslmode='' port=1 port=2");
        assert_eq!(tcp_hosts(&c), ["b"]);
        assert_eq!(c.pg.get_ports(), [2]);
        assert_eq!(c.tls.mode, SslMode::Prefer);
    }

    #[test]
    fn hostaddr_alone_stands_in_for_the_host_except_for_verify_full() {
        let c = parse("hostaddr=127.0.0.1 sslmode=require");
        assert_eq!(tcp_hosts(&c), ["127.0.0.1"]);
        let e = error("hostaddr=127.0.0.1 sslmode=verify-full");
        assert!(e.contains("needs host="), "{e}");
        let c = parse("host=db.internal hostaddr=127.0.0.1 sslmode=verify-full");
        assert_eq!(tcp_hosts(&c), ["db.internal"]);
    }

    #[test]
    fn tls_options() {
        let c = parse("host=h sslsni=0 ssl_min_protocol_version=TLSv1.3 sslcompression=0");
        assert!(!c.tls.sni);
        assert!(c.tls.min_tls13);
        let c = parse("host=h ssl_max_protocol_version=TLSv1.2");
        assert!(c.tls.max_tls12);
        assert!(error("host=h ssl_max_protocol_version=TLSv1.1").contains("only TLS 1.2 and 1.3"));
        assert!(error("host=h sslnegotiation=direct").contains("sslmode=require or stronger"));
        assert!(
            parse("host=h sslnegotiation=direct sslmode=require")
                .tls
                .direct
        );
    }

    #[test]
    fn invalid_values_are_named() {
        for (s, expected) in [
            ("host=h sslmode=foo", "invalid sslmode \"foo\""),
            (
                "postgres://h/db?sslmode=verify_full",
                "invalid sslmode \"verify_full\"",
            ),
            (
                "host=h channel_binding=always",
                "invalid channel_binding \"always\"",
            ),
            (
                "host=h channel_binding=require sslmode=disable",
                "needs TLS",
            ),
            ("host=h sslcert=/c", "sslkey is not"),
            ("host=h sslkey=/k", "sslcert is not"),
            ("host=h sslsni=yes", "invalid sslsni \"yes\""),
            ("host=h sslcrl=/x", "\"sslcrl\" is not supported"),
            ("host=h sslmod=require", "did you mean \"sslmode\""),
            ("host=h port=abc", "invalid value for option `port`"),
            ("dbname=x", "no host"),
            ("host=a,b port=1,2,3", "3 ports for 2 hosts"),
            ("localhost", "expected a postgres:// or postgresql:// URL"),
            ("mysql://h/db", "unsupported URL scheme \"mysql\""),
            ("postgres://h/db?sslmode", "without \"=\""),
            ("postgres://[::1/db", "missing \"]\""),
            ("postgres://h:5432x/db", "invalid value for option `port`"),
            ("postgres://h/db?ssl=false", "only ssl=true"),
        ] {
            let e = error(s);
            assert!(e.contains(expected), "{s}: {e}");
        }
    }

    #[test]
    fn no_error_quotes_the_password() {
        let secret = "Hunter2Secret";
        for s in [
            format!("postgres://u:{secret}@h/db?sslmode=bogus"),
            format!("postgres://u:{secret}%zz@h/db"),
            format!("postgres://u:{secret}@h:x{secret}/db"),
            format!("postgres://u:{secret}/@h/db"),
            format!("host=h password='{secret}"),
            format!("host=h password={secret} {secret}"),
            format!("host=h password=a {secret}=b"),
            format!("host=h password=a sslmode=x-{secret}-{secret}"),
            format!("host=h password=a channel_binding={secret}{secret}"),
            format!("{secret} host=h"),
        ] {
            let e = error(&s);
            assert!(!e.contains(secret), "{s}: {e}");
            assert!(!e.contains("Hunter"), "{s}: {e}");
        }
    }

    #[test]
    fn messages_are_scrubbed_of_the_password() {
        let c = parse("host=h password=Sw0rdfish");
        assert_eq!(
            c.scrub("the Sw0rdfish said".into()),
            "the ******** said".to_string()
        );
    }

    #[test]
    fn der_walk_finds_the_signature_algorithm() {
        // SEQUENCE { SEQUENCE {}, SEQUENCE { OID ecdsa-with-SHA384 }, BIT STRING }
        let cert = [
            0x30, 0x10, 0x30, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
            0x03, 0x03, 0x03, 0x02, 0x00, 0x00,
        ];
        assert_eq!(
            signature_algorithm(&cert),
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..])
        );
        assert_eq!(tls_server_end_point(&cert).map(|h| h.len()), Some(48));
        // Long-form length on the outer SEQUENCE.
        let mut long = vec![0x30, 0x81, 0x10];
        long.extend_from_slice(&cert[2..]);
        assert_eq!(signature_algorithm(&long), signature_algorithm(&cert));
        // Truncated or not a certificate.
        assert_eq!(signature_algorithm(&cert[..10]), None);
        assert_eq!(signature_algorithm(&[0x04, 0x00]), None);
        assert_eq!(signature_algorithm(&[]), None);
    }

    #[test]
    fn end_point_hash_follows_rfc_5929() {
        let with_oid = |oid: &[u8]| {
            let mut alg = vec![0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut inner = vec![0x30, 0x00, 0x30, alg.len() as u8];
            inner.extend_from_slice(&alg);
            let mut cert = vec![0x30, inner.len() as u8];
            cert.extend_from_slice(&inner);
            tls_server_end_point(&cert).map(|h| h.len())
        };
        let rsa = |n: u8| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n];
        assert_eq!(with_oid(&rsa(5)), Some(32), "sha1WithRSA → SHA-256");
        assert_eq!(with_oid(&rsa(11)), Some(32));
        assert_eq!(with_oid(&rsa(12)), Some(48));
        assert_eq!(with_oid(&rsa(13)), Some(64));
        assert_eq!(with_oid(&rsa(10)), None, "RSA-PSS");
        assert_eq!(
            with_oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
            Some(32)
        );
        assert_eq!(
            with_oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]),
            Some(64)
        );
        assert_eq!(with_oid(&[0x2b, 0x65, 0x70]), None, "Ed25519");
    }

    #[test]
    fn missing_files_are_named() {
        let c = parse("host=h sslmode=verify-full sslrootcert=/nonexistent/ca.crt");
        let e = client_config(&c.tls).err().unwrap();
        assert!(
            e.contains("cannot read sslrootcert /nonexistent/ca.crt"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("dw-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let c = parse(&format!(
            "host=h sslmode=verify-ca sslrootcert={}",
            empty.display()
        ));
        let e = client_config(&c.tls).err().unwrap();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
