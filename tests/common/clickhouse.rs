//! Real ClickHouse servers for tests: one ZooKeeper and three ClickHouse
//! servers forming cluster `sparsam` (shard 1 with replicas r1 and r2,
//! shard 2 with r1), or a single server without ZooKeeper, each on free
//! loopback ports with its own config under a temporary directory.
//! Servers are killed when the value is dropped.
//!
//! Debian's packages (`clickhouse-server`, `zookeeper`) provide the
//! binaries; `scripts/test.sh` installs them. ZooKeeper has no launcher
//! here that works without systemd, so it starts as a plain `java`
//! process with the jars Debian puts into `/usr/share/java`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Name of the cluster in every server's `remote_servers`.
pub const CLUSTER: &str = "sparsam";

/// Merged-away and dropped parts stay on disk this many seconds.
pub const OLD_PARTS_LIFETIME_SECS: u32 = 5;

/// One ClickHouse server of the set.
pub struct ClickHouseServer {
    pub name: String,
    pub shard: u32,
    pub replica: String,
    pub http_port: u16,
    pub tcp_port: u16,
    pub interserver_port: u16,
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl ClickHouseServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start clickhouse-server (run scripts/test.sh to install it): {e}")
            });
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the server answers and, in a cluster, has its
    /// ZooKeeper session (18.16 answers `/ping` before that, and crashes on
    /// distributed DDL that arrives in between).
    fn wait_ready(&self, zookeeper: bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = if zookeeper {
            "/?query=SELECT%20count()%20FROM%20system.zookeeper%20WHERE%20path%20%3D%20'%2F'"
        } else {
            "/ping"
        };
        while Instant::now() < deadline {
            if http_get(self.http_port, probe).is_some_and(|body| !body.trim().is_empty()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let err = std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default();
        panic!(
            "ClickHouse server {} did not answer; err.log:\n{err}",
            self.name
        );
    }
}

/// ZooKeeper and ClickHouse servers under one temporary directory.
pub struct ClickHouseSet {
    pub servers: Vec<ClickHouseServer>,
    zookeeper: Option<Child>,
    pub zookeeper_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// `n` loopback ports free at the time of asking.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A plain HTTP/1.0 GET on loopback (readiness probes; no client crate
/// needed, and it works before any server exists).
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

/// ZooKeeper's four-letter `ruok` answered with `imok`.
fn zookeeper_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"ruok").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer == "imok"
}

impl ClickHouseSet {
    /// One ZooKeeper and three ClickHouse servers: cluster [`CLUSTER`] of
    /// two shards, shard 1 replicated twice, `internal_replication` on.
    pub fn cluster() -> ClickHouseSet {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(10);
        let zk_port = ports[0];
        let zookeeper = start_zookeeper(dir.path(), zk_port);
        let specs = [(1, "r1"), (1, "r2"), (2, "r1")];
        let mut servers: Vec<ClickHouseServer> = specs
            .iter()
            .enumerate()
            .map(|(i, (shard, replica))| ClickHouseServer {
                name: format!("s{shard}{replica}"),
                shard: *shard,
                replica: replica.to_string(),
                http_port: ports[1 + 3 * i],
                tcp_port: ports[2 + 3 * i],
                interserver_port: ports[3 + 3 * i],
                dir: dir.path().join(format!("s{shard}{replica}")),
                config: PathBuf::new(),
                child: None,
            })
            .collect();
        let remote_servers = remote_servers_xml(&servers);
        for server in &mut servers {
            let zk = format!(
                "<zookeeper><node><host>127.0.0.1</host><port>{zk_port}</port></node></zookeeper>\n\
                 <macros><shard>{}</shard><replica>{}</replica></macros>\n\
                 <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n{remote_servers}",
                server.shard, server.replica
            );
            server.config = write_server_config(server, &zk);
        }
        let mut set = ClickHouseSet {
            servers,
            zookeeper: Some(zookeeper),
            zookeeper_port: Some(zk_port),
            dir,
        };
        set.wait_zookeeper();
        set.start_all();
        set
    }

    /// One ClickHouse server, no cluster, no ZooKeeper.
    pub fn single() -> ClickHouseSet {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(3);
        let mut server = ClickHouseServer {
            name: "single".into(),
            shard: 1,
            replica: "r1".into(),
            http_port: ports[0],
            tcp_port: ports[1],
            interserver_port: ports[2],
            dir: dir.path().join("single"),
            config: PathBuf::new(),
            child: None,
        };
        server.config = write_server_config(&server, "");
        let mut set = ClickHouseSet {
            servers: vec![server],
            zookeeper: None,
            zookeeper_port: None,
            dir,
        };
        set.start_all();
        set
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every server's HTTP interface.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(ClickHouseServer::url).collect()
    }

    fn wait_zookeeper(&self) {
        let Some(port) = self.zookeeper_port else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if zookeeper_ok(port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("zk/zk.log")).unwrap_or_default();
        panic!("ZooKeeper did not answer; log:\n{log}");
    }

    /// Starts every server that is not running and waits until all answer.
    pub fn start_all(&mut self) {
        for server in &mut self.servers {
            if server.child.is_none() {
                server.spawn();
            }
        }
        for server in &self.servers {
            server.wait_ready(self.zookeeper_port.is_some());
        }
    }

    /// kill -9 of every ClickHouse server (ZooKeeper keeps running).
    pub fn kill_all(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }

    /// kill -9 of server `i`.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Starts server `i` again and waits until it answers.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].spawn();
        self.servers[i].wait_ready(self.zookeeper_port.is_some());
    }

    /// Runs `sql` on server `i` over HTTP (POST, as DDL needs) and returns
    /// the answer's body; panics on an error answer.
    pub fn query(&self, i: usize, sql: &str) -> String {
        let res = reqwest::blocking::Client::new()
            .post(self.servers[i].url())
            .body(sql.to_string())
            .send()
            .unwrap_or_else(|e| panic!("{}: {e}", self.servers[i].name));
        let status = res.status();
        let body = res.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "{}: {sql}: {body}",
            self.servers[i].name
        );
        body
    }

    /// Like [`ClickHouseSet::query`], parsed as one number.
    pub fn count(&self, i: usize, sql: &str) -> u64 {
        let body = self.query(i, sql);
        body.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a number from {sql}: {body:?}"))
    }
}

impl Drop for ClickHouseSet {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(mut zk) = self.zookeeper.take() {
            let _ = zk.kill();
            let _ = zk.wait();
        }
    }
}

fn remote_servers_xml(servers: &[ClickHouseServer]) -> String {
    let mut shards = String::new();
    for shard in [1, 2] {
        shards.push_str("<shard><internal_replication>true</internal_replication>");
        for s in servers.iter().filter(|s| s.shard == shard) {
            shards.push_str(&format!(
                "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                s.tcp_port
            ));
        }
        shards.push_str("</shard>");
    }
    format!("<remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>")
}

/// Writes the server's `config.xml` and `users.xml`; `extra` goes into
/// the config as is (cluster, ZooKeeper, macros).
fn write_server_config(server: &ClickHouseServer, extra: &str) -> PathBuf {
    let d = &server.dir;
    std::fs::create_dir_all(d).expect("server dir");
    let dd = d.display();
    let config = format!(
        r#"<yandex>
  <logger><level>warning</level><log>{dd}/server.log</log><errorlog>{dd}/err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><interserver_http_port>{inter}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections><keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size><mark_cache_size>67108864</mark_cache_size>
  <path>{dd}/data/</path><tmp_path>{dd}/tmp/</tmp_path><user_files_path>{dd}/user_files/</user_files_path>
  <format_schema_path>{dd}/format_schemas/</format_schema_path>
  <users_config>{dd}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
  <merge_tree><old_parts_lifetime>{OLD_PARTS_LIFETIME_SECS}</old_parts_lifetime></merge_tree>
  {extra}
</yandex>
"#,
        http = server.http_port,
        tcp = server.tcp_port,
        inter = server.interserver_port,
    );
    let users = r#"<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#;
    let path = d.join("config.xml");
    std::fs::write(&path, config).expect("write config.xml");
    std::fs::write(d.join("users.xml"), users).expect("write users.xml");
    path
}

/// Starts ZooKeeper on `port` as a plain Java process (Debian's
/// `zkServer.sh` expects systemd's environment).
fn start_zookeeper(dir: &Path, port: u16) -> Child {
    let zk = dir.join("zk");
    let conf = zk.join("conf");
    std::fs::create_dir_all(zk.join("data")).expect("zk data dir");
    std::fs::create_dir_all(&conf).expect("zk conf dir");
    std::fs::write(
        conf.join("zoo.cfg"),
        format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,stat\n",
            zk.join("data").display()
        ),
    )
    .expect("zoo.cfg");
    std::fs::write(
        conf.join("log4j.properties"),
        format!(
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n\
             log4j.appender.F.File={}\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.F.layout.ConversionPattern=%d %p %m%n\n",
            zk.join("zk.log").display()
        ),
    )
    .expect("log4j.properties");
    let java = Path::new("/usr/share/java");
    let mut classpath = vec![conf.clone(), java.join("zookeeper.jar")];
    let wanted = [
        "slf4j-api.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
        "zookeeper-jute.jar",
        "commons-cli.jar",
        "metrics-core.jar",
        "snappy-java.jar",
    ];
    classpath.extend(wanted.iter().map(|j| java.join(j)));
    // Netty comes split into many jars; take every unversioned one.
    if let Ok(entries) = std::fs::read_dir(java) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("netty-") && name.ends_with(".jar") && !name.contains(".Final") {
                classpath.push(entry.path());
            }
        }
    }
    assert!(
        java.join("zookeeper.jar").is_file(),
        "ZooKeeper is not installed (run scripts/test.sh)"
    );
    let classpath = std::env::join_paths(classpath).expect("classpath");
    Command::new("java")
        .arg(format!("-Dzookeeper.log.dir={}", zk.display()))
        .arg(format!(
            "-Dlog4j.configuration=file:{}",
            conf.join("log4j.properties").display()
        ))
        .arg("-cp")
        .arg(classpath)
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(conf.join("zoo.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start ZooKeeper (java): {e}"))
}
