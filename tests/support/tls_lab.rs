//! Real certificates and a real TLS Redis for one test: a private CA made with `openssl`,
//! server certificates that are right, for another name, or expired, a client
//! certificate, and a CA nobody trusts.
//!
//! The Redis serves TLS on one port and plain TCP on another: the worker uses the TLS
//! port, the test observes through the plain one (`GET`, `CLIENT LIST`), so the test's own
//! view never depends on the TLS code under test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use super::sentinel_lab::{FAILOVER_PATIENCE, MASTER_NAME};
use super::wait_until;
use super::{RedisServer, free_port, path_str};

/// A private CA and certificates signed by it, in a temp dir of their own.
pub struct Certificates {
    dir: TempDir,
}

/// The server certificate a TLS Redis presents.
#[derive(Clone, Copy)]
pub enum ServerCert {
    /// Valid for 127.0.0.1 and localhost, signed by the lab's CA.
    Valid,
    /// Signed by the lab's CA, but for `elsewhere.example` only.
    OtherName,
    /// For 127.0.0.1, signed by the lab's CA, expired.
    Expired,
    /// For 127.0.0.1, signed by the lab's CA, valid only in 2020: expired long ago, whose
    /// refusal's text carries the time of each handshake.
    LongExpired,
}

impl Certificates {
    /// Makes the CA, an untrusted CA, the server certificates and a client certificate.
    pub fn make() -> Self {
        let certificates = Self {
            dir: tempfile::tempdir().expect("temp dir for certificates"),
        };
        certificates.self_signed("ca", "counter-worker test CA");
        certificates.self_signed("untrusted-ca", "a CA nobody trusts");
        // Also a client certificate: cluster nodes show it to each other over TLS.
        certificates.signed(
            "server",
            "IP:127.0.0.1,DNS:localhost",
            "serverAuth,clientAuth",
            2,
        );
        certificates.signed("elsewhere", "DNS:elsewhere.example", "serverAuth", 2);
        certificates.signed("expired", "IP:127.0.0.1", "serverAuth", -1);
        certificates.signed("client", "DNS:counter-worker", "clientAuth", 2);
        certificates.signed("client-expired", "DNS:counter-worker", "clientAuth", -1);
        certificates.signed_in_2020("long-expired", "IP:127.0.0.1");
        certificates.signed_without_extensions("client-v1", "counter-worker");
        certificates
    }

    /// The file `name` (e.g. `ca.pem`, `client.key`) in the lab.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The same as a `&str`, for an environment variable.
    pub fn path(&self, name: &str) -> String {
        path_str(&self.file(name)).to_owned()
    }

    /// `REDIS_TLS_CA_FILE` for the lab's CA.
    pub fn trust_lab_ca(&self) -> (&'static str, String) {
        ("REDIS_TLS_CA_FILE", self.path("ca.pem"))
    }

    /// `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` for the certificate `name` of the
    /// lab (`client`, `client-expired`, or `elsewhere`, issued for servers only).
    pub fn client_identity(&self, name: &str) -> [(&'static str, String); 2] {
        [
            ("REDIS_TLS_CERT_FILE", self.path(&format!("{name}.pem"))),
            ("REDIS_TLS_KEY_FILE", self.path(&format!("{name}.key"))),
        ]
    }

    /// The `redis-server` arguments for a TLS port presenting `cert`; with
    /// `client_certs`, clients must show a certificate signed by the lab's CA.
    pub fn server_args(&self, tls_port: u16, cert: ServerCert, client_certs: bool) -> Vec<String> {
        let name = match cert {
            ServerCert::Valid => "server",
            ServerCert::OtherName => "elsewhere",
            ServerCert::Expired => "expired",
            ServerCert::LongExpired => "long-expired",
        };
        let auth = if client_certs { "yes" } else { "no" };
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.path(&format!("{name}.pem")),
            "--tls-key-file",
            &self.path(&format!("{name}.key")),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            auth,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn self_signed(&self, name: &str, subject: &str) {
        self.request(name, subject, &["-x509", "-days", "2"]);
    }

    /// A key and a certificate for `names` (subjectAltName form), signed by the lab's CA,
    /// valid for `days` (negative: expired).
    fn signed(&self, name: &str, names: &str, usage: &str, days: i32) {
        let extensions = format!("{name}.ext");
        std::fs::write(
            self.file(&extensions),
            format!("subjectAltName={names}\nextendedKeyUsage={usage}\n"),
        )
        .expect("write extensions");
        self.request(name, name, &[]);
        self.sign_request(name, days, &["-extfile", &extensions]);
    }

    /// A server certificate for `names`, signed by the lab's CA with `openssl ca`, valid
    /// from 2020-01-01 to 2021-01-01 only: `x509 -days` cannot date one in the past.
    fn signed_in_2020(&self, name: &str, names: &str) {
        let config = format!(
            "[ca]\ndefault_ca = lab\n[lab]\ndatabase = {name}.index\nnew_certs_dir = .\n\
             serial = {name}.serial\ndefault_md = sha256\npolicy = any\n[any]\n\
             commonName = supplied\n[server]\nsubjectAltName = {names}\n\
             extendedKeyUsage = serverAuth\n"
        );
        std::fs::write(self.file(&format!("{name}.cnf")), config).expect("write CA config");
        std::fs::write(self.file(&format!("{name}.index")), "").expect("write CA index");
        std::fs::write(self.file(&format!("{name}.serial")), "01\n").expect("write CA serial");
        self.request(name, name, &[]);
        let (config, out, pem) = (
            format!("{name}.cnf"),
            format!("{name}.out"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &config,
            "-extensions",
            "server",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            &out,
            "-out",
            &pem,
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
        ]);
    }

    /// A client certificate signed by the lab's CA with `x509 -req` and no `-extfile`:
    /// OpenSSL 3.0 makes it X.509 version 1, which Redis accepts and rustls does not.
    fn signed_without_extensions(&self, name: &str, subject: &str) {
        self.request(name, subject, &[]);
        self.sign_request(name, 2, &[]);
    }

    /// Signs the request `{name}.out` with the lab's CA into `{name}.pem`, valid for `days`
    /// (negative: expired), with `extra` arguments for `openssl x509 -req`.
    fn sign_request(&self, name: &str, days: i32, extra: &[&str]) {
        let (out, pem, days) = (
            format!("{name}.out"),
            format!("{name}.pem"),
            days.to_string(),
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &out,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            &days,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
    }

    /// A new P-256 key in `{name}.key` and, in `{name}.out`, a request for `subject`, or
    /// with `-x509` a self-signed certificate; `{name}.pem` is then a copy of the latter.
    fn request(&self, name: &str, subject: &str, extra: &[&str]) {
        let (key, out) = (format!("{name}.key"), format!("{name}.out"));
        let subject = format!("/CN={subject}");
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &out,
            "-subj",
            &subject,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
        if extra.contains(&"-x509") {
            std::fs::copy(self.file(&out), self.file(&format!("{name}.pem"))).expect("copy cert");
        }
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl (is it installed?)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A Redis serving TLS on [`Self::tls_port`] with the lab's certificates, and plain TCP
/// on its harness port for the test's own view.
pub struct TlsRedis {
    pub redis: RedisServer,
    pub tls_port: u16,
}

impl TlsRedis {
    /// A running TLS Redis presenting `cert`, with `extra` `redis-server` arguments.
    pub fn start(
        certificates: &Certificates,
        cert: ServerCert,
        client_certs: bool,
        extra: &[&str],
    ) -> Self {
        let tls_port = free_port();
        let args = certificates.server_args(tls_port, cert, client_certs);
        let args: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let mut redis = RedisServer::not_started(None).with_args(&args);
        redis.launch();
        Self { redis, tls_port }
    }

    /// The worker's URL for the TLS port at `host` (`127.0.0.1` or `localhost`).
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.tls_port)
    }

    /// How many clients are connected to the TLS port right now, as Redis sees them.
    pub fn tls_clients(&self) -> usize {
        let list: String = self.redis.query(redis::cmd("CLIENT").arg("LIST"));
        let port = format!("laddr=127.0.0.1:{} ", self.tls_port);
        list.lines().filter(|line| line.contains(&port)).count()
    }
}

/// A master and a replica replicating over TLS, and one sentinel (quorum 1) that watches
/// them over TLS and serves its clients on a TLS port too.
pub struct TlsSentinelLab {
    /// The data nodes; the first one starts as master.
    pub data: Vec<TlsRedis>,
    pub sentinel: RedisServer,
    pub sentinel_tls_port: u16,
}

impl TlsSentinelLab {
    /// Returns once the sentinel knows the replica, so a failover can happen.
    pub fn start(certificates: &Certificates) -> Self {
        let replicate = ["--tls-replication", "yes"];
        let master = TlsRedis::start(certificates, ServerCert::Valid, false, &replicate);
        let master_port = master.tls_port.to_string();
        let replica_of = [
            "--tls-replication",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &master_port,
        ];
        let replica = TlsRedis::start(certificates, ServerCert::Valid, false, &replica_of);
        wait_until("the replica is in sync over TLS", FAILOVER_PATIENCE, || {
            replica.redis.info("replication").get("master_link_status") == Some(&"up".to_owned())
        });
        let sentinel_tls_port = free_port();
        let config = format!(
            "tls-port {sentinel_tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {MASTER_NAME} 5000\n\
             sentinel failover-timeout {MASTER_NAME} 30000\n",
            certificates.path("server.pem"),
            certificates.path("server.key"),
            certificates.path("ca.pem"),
        );
        let mut sentinel = RedisServer::sentinel_not_started(&config, None);
        sentinel.launch();
        wait_until("the sentinel knows the replica", FAILOVER_PATIENCE, || {
            let master: HashMap<String, String> =
                sentinel.query(redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME));
            master.get("num-slaves").map(String::as_str) == Some("1")
        });
        Self {
            data: vec![master, replica],
            sentinel,
            sentinel_tls_port,
        }
    }

    /// The worker's URL: the sentinel's TLS port.
    pub fn url(&self) -> String {
        format!(
            "rediss+sentinel://127.0.0.1:{}/{MASTER_NAME}",
            self.sentinel_tls_port
        )
    }

    /// The TLS port of the master, as the sentinel names it.
    pub fn master_tls_port(&self) -> u16 {
        let (_host, port): (String, u16) = self.sentinel.query(
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME),
        );
        port
    }
}
