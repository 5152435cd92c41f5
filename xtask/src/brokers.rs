//! Peer STOMP brokers for `cargo xtask load stomp --compare`: RabbitMQ (Debian's
//! `rabbitmq-server`, its bundled `rabbitmq_stomp` plugin) and ActiveMQ Classic (Debian's
//! `activemq`, a STOMP transport connector).
//!
//! Missing packages are installed with apt (root only; never part of `cargo xtask ci`). The
//! Debian services are never enabled: each broker runs in the foreground as a child
//! [`Process`] with configuration, state and log files of its own under a directory the caller
//! gives (`target/xtask/load/<name>/`), wiped at every start, listening on free loopback ports
//! only. Dropping a [`Broker`] kills its process group; for RabbitMQ also the `epmd` it uses
//! (started by us on a private port, so a host's own Erlang nodes are never touched).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::process::Process;

/// RabbitMQ's start script in the Debian package (runs the node in the foreground).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Erlang's port mapper daemon (Debian `erlang-base`, a dependency of `rabbitmq-server`).
const EPMD: &str = "/usr/bin/epmd";
/// ActiveMQ's launcher in the Debian package. Debian ships no foreground `activemq console`
/// script (`/usr/bin/activemq` backgrounds java and reads `/usr/share/activemq/activemq-options`,
/// which overrides `ACTIVEMQ_BASE`), so xtask runs this jar's `start` task itself, the way
/// upstream's `bin/activemq console` does.
const ACTIVEMQ_HOME: &str = "/usr/share/activemq";
const ACTIVEMQ_JAR: &str = "/usr/share/activemq/bin/activemq.jar";
/// Java (Debian `default-jre-headless`, a dependency of `activemq`).
const JAVA: &str = "/usr/bin/java";

/// A peer broker xtask knows how to install and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// RabbitMQ 3.10 with `rabbitmq_stomp`.
    RabbitMq,
    /// ActiveMQ Classic 5.17.
    ActiveMq,
}

impl Peer {
    /// Every peer, in table order.
    pub const ALL: [Peer; 2] = [Peer::RabbitMq, Peer::ActiveMq];

    /// The name used in tables, logs and `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Peer::RabbitMq => "rabbitmq",
            Peer::ActiveMq => "activemq",
        }
    }

    /// The peer called `name` (as [`Peer::name`] spells it).
    pub fn from_name(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }

    fn package(self) -> &'static str {
        match self {
            Peer::RabbitMq => "rabbitmq-server",
            Peer::ActiveMq => "activemq",
        }
    }

    /// The files this peer needs from its Debian packages.
    fn files(self) -> &'static [&'static str] {
        match self {
            Peer::RabbitMq => &[RABBITMQ_SERVER, EPMD],
            Peer::ActiveMq => &[ACTIVEMQ_JAR, JAVA],
        }
    }

    fn installed(self) -> bool {
        self.files().iter().all(|f| Path::new(f).exists())
    }

    /// The login `stompload` passes (RabbitMQ's `guest` may log in over loopback; ActiveMQ
    /// accepts any login by default).
    pub fn login(self) -> Option<(&'static str, &'static str)> {
        match self {
            Peer::RabbitMq => Some(("guest", "guest")),
            Peer::ActiveMq => None,
        }
    }
}

/// Installs the Debian packages of the `peers` that are missing (one `apt-get update`, one
/// `apt-get install --no-install-recommends`); root only. The packages' own services stay off:
/// nothing here starts them.
pub fn ensure_installed(peers: &[Peer]) -> Result {
    let missing: Vec<Peer> = peers.iter().copied().filter(|p| !p.installed()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.package()).collect();
    if !crate::apt::is_root() {
        return Err(format!(
            "missing Debian packages (as root: apt-get install --no-install-recommends {})",
            packages.join(" ")
        )
        .into());
    }
    eprintln!(
        "xtask load: installing {} with apt (once; takes a minute)",
        packages.join(" ")
    );
    crate::apt::apt_install(&packages)?;
    for p in missing {
        if let Some(f) = p.files().iter().find(|f| !Path::new(f).exists()) {
            return Err(format!(
                "apt-get installed `{}` but {f} is still missing",
                p.package()
            )
            .into());
        }
    }
    Ok(())
}

/// A running peer broker; dropping it stops it (SIGKILL to its process group, then its `epmd`).
pub struct Broker {
    /// Which broker this is.
    pub peer: Peer,
    /// Its STOMP port on 127.0.0.1.
    pub port: u16,
    /// The broker itself (`Option` so [`Drop`] can stop it before its helpers).
    process: Option<Process>,
    /// Helper processes stopped after the broker (RabbitMQ's `epmd`).
    helpers: Vec<Process>,
    /// The private epmd port, to find any `epmd -daemon` Erlang may have started on it.
    epmd_port: Option<u16>,
}

impl Broker {
    /// The process group of the broker (its start script, the VM and their threads), for CPU
    /// accounting.
    pub fn pgid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Fails (with the log's tail) if the broker has exited.
    pub fn ensure_running(&mut self) -> Result {
        match &mut self.process {
            Some(p) => p.ensure_running(),
            None => Err(format!("{} is stopped", self.peer.name()).into()),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        drop(self.process.take());
        self.helpers.clear();
        if let Some(port) = self.epmd_port {
            kill_stray_epmd(port);
        }
    }
}

/// Starts `peer` with fresh state under `dir` on free loopback ports; returns once its STOMP
/// port accepts connections (bounded by [`Process::wait_for_port`]'s timeout). With `cpu`, the
/// broker and every process it starts run on that CPU only (`taskset -c CPU`; the JVM and the
/// Erlang VM size their thread pools from the CPUs they may use).
pub fn start(peer: Peer, dir: &Path, cpu: Option<&str>) -> Result<Broker> {
    // Fresh state every time: a previous run's queues, users or KahaDB files never leak in.
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    match peer {
        Peer::RabbitMq => start_rabbitmq(dir, cpu),
        Peer::ActiveMq => start_activemq(dir, cpu),
    }
}

fn start_rabbitmq(dir: &Path, cpu: Option<&str>) -> Result<Broker> {
    let stomp = crate::load::free_port()?;
    let amqp = crate::load::free_port()?;
    let dist = crate::load::free_port()?;
    let epmd_port = crate::load::free_port()?;
    let home = dir.join("home"); // the Erlang cookie goes here, not into root's home
    let mnesia = dir.join("mnesia");
    let logs = dir.join("log");
    for d in [&home, &mnesia, &logs] {
        std::fs::create_dir_all(d)?;
    }
    let config = dir.join("rabbitmq.conf");
    std::fs::write(
        &config,
        format!(
            "# Written by cargo xtask load stomp --compare.\n\
             listeners.tcp.default = 127.0.0.1:{amqp}\n\
             stomp.listeners.tcp.1 = 127.0.0.1:{stomp}\n"
        ),
    )?;
    let plugins = dir.join("enabled_plugins");
    std::fs::write(&plugins, "[rabbitmq_stomp].\n")?;
    // Replaces /etc/rabbitmq/rabbitmq-env.conf, so nothing of the host's configuration applies.
    let env_file = dir.join("rabbitmq-env.conf");
    std::fs::write(&env_file, "")?;

    // Our own epmd on a private port, in the foreground: Erlang's usual `epmd -daemon` would
    // outlive the broker (it leaves the process group).
    let mut epmd_cmd = watched(EPMD, cpu);
    epmd_cmd.args(["-port", &epmd_port.to_string()]);
    let mut epmd = Process::spawn("epmd", &mut epmd_cmd, &dir.join("epmd.log"))?;
    epmd.wait_for_port(epmd_port)?;

    let mut cmd = watched(RABBITMQ_SERVER, cpu);
    cmd.env("HOME", &home)
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_CONF_ENV_FILE", &env_file)
        .env("RABBITMQ_NODENAME", "sb-load@localhost")
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", amqp.to_string())
        .env("RABBITMQ_DIST_PORT", dist.to_string())
        .env("RABBITMQ_MNESIA_BASE", &mnesia)
        .env("RABBITMQ_LOG_BASE", &logs)
        .env("RABBITMQ_LOGS", "-")
        .env("RABBITMQ_CONFIG_FILE", &config)
        .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
        .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-start_epmd false")
        .current_dir(dir);
    let mut p = Process::spawn("rabbitmq", &mut cmd, &dir.join("rabbitmq.log"))?;
    let started = p.wait_for_port(stomp);
    let broker = Broker {
        peer: Peer::RabbitMq,
        port: stomp,
        process: Some(p),
        helpers: vec![epmd],
        epmd_port: Some(epmd_port),
    };
    started?; // on failure `broker` drops here and stops everything it started
    Ok(broker)
}

/// The broker definition: no persistence, no JMX, no advisory topics, one STOMP connector
/// with Nagle off (what the other brokers do on their sockets by default).
fn activemq_xml(port: u16, data: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cargo xtask (load stomp, compare mode). -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="sb-load"
          persistent="false" useJmx="false" advisorySupport="false"
          dataDirectory="{data}">
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:{port}?transport.tcpNoDelay=true"/>
    </transportConnectors>
  </broker>
</beans>
"#,
        data = data.display()
    )
}

/// log4j 1.2 (what Debian's ActiveMQ logs through): warnings to the console, i.e. our log file.
const ACTIVEMQ_LOG4J: &str = "\
log4j.rootLogger=WARN, console
log4j.logger.org.apache.activemq.broker.BrokerService=INFO
log4j.logger.org.apache.activemq.broker.TransportConnector=INFO
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d %-5p %c{1} | %m%n
";

fn start_activemq(dir: &Path, cpu: Option<&str>) -> Result<Broker> {
    let port = crate::load::free_port()?;
    let conf = dir.join("conf");
    let data = dir.join("data");
    let tmp = dir.join("tmp");
    for d in [&conf, &data, &tmp] {
        std::fs::create_dir_all(d)?;
    }
    let xml = conf.join("activemq.xml");
    std::fs::write(&xml, activemq_xml(port, &data))?;
    let log4j = conf.join("log4j.properties");
    std::fs::write(&log4j, ACTIVEMQ_LOG4J)?;
    let prop = |k: &str, v: &PathBuf| format!("-D{k}={}", v.display());
    let mut cmd = watched(JAVA, cpu);
    // Upstream's default heap (bin/env: -Xms64M -Xmx1G).
    cmd.args([
        "-Xms64M",
        "-Xmx1G",
        "--add-opens",
        "java.base/java.lang=ALL-UNNAMED",
    ])
    .arg(prop("java.io.tmpdir", &tmp))
    .arg(format!("-Dlog4j.configuration=file:{}", log4j.display()))
    .arg(prop("activemq.classpath", &conf))
    .arg(format!("-Dactivemq.home={ACTIVEMQ_HOME}"))
    .arg(prop("activemq.base", &dir.to_path_buf()))
    .arg(prop("activemq.conf", &conf))
    .arg(prop("activemq.data", &data))
    .args(["-jar", ACTIVEMQ_JAR, "start"])
    .arg(format!("xbean:file:{}", xml.display()))
    .current_dir(dir);
    let mut p = Process::spawn("activemq", &mut cmd, &dir.join("activemq.log"))?;
    let started = p.wait_for_port(port);
    let broker = Broker {
        peer: Peer::ActiveMq,
        port,
        process: Some(p),
        helpers: Vec::new(),
        epmd_port: None,
    };
    started?;
    Ok(broker)
}

/// A shell that runs `program` (with the arguments added to the returned command) in the
/// background and kills its own process group, `program` included, as soon as this xtask is gone:
/// [`Process`] stops brokers when dropped, but an xtask killed by a signal (Ctrl-C) drops
/// nothing, and a JVM or an Erlang node left behind would hold ports and memory. The watchdog
/// polls once a second; when `program` exits by itself, the shell exits with its status.
/// With `cpu`, the shell runs under `taskset -c CPU`, and so does everything it starts.
fn watched(program: &str, cpu: Option<&str>) -> Command {
    const WATCHDOG: &str = r#"
"$@" &
child=$!
while kill -0 "$XTASK_PID" 2>/dev/null; do
    if ! kill -0 "$child" 2>/dev/null; then
        wait "$child"
        exit $?
    fi
    sleep 1
done
kill -KILL 0
"#;
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpu, "/bin/sh"]);
            cmd
        }
        None => Command::new("/bin/sh"),
    };
    cmd.args(["-c", WATCHDOG, "sh", program])
        .env("XTASK_PID", std::process::id().to_string());
    cmd
}

/// Kills (by pid) any `epmd` serving `port`: one Erlang started as a daemon despite
/// `-start_epmd false` would otherwise outlive the run.
fn kill_stray_epmd(port: u16) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let env_var = format!("ERL_EPMD_PORT={port}");
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != "epmd" {
            continue;
        }
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let ours = environ.split(|&b| b == 0).any(|v| v == env_var.as_bytes())
            || cmdline
                .split(|&b| b == 0)
                .any(|a| a == port.to_string().as_bytes());
        if ours {
            eprintln!("xtask load: stopping epmd (pid {pid}) left on port {port}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_round_trip() {
        for p in Peer::ALL {
            assert_eq!(Peer::from_name(p.name()), Some(p));
        }
        assert_eq!(Peer::from_name("switchboard"), None);
    }

    #[test]
    fn activemq_config_has_only_the_stomp_connector() {
        let xml = activemq_xml(61999, Path::new("/x/data"));
        assert_eq!(xml.matches("<transportConnector ").count(), 1);
        assert!(xml.contains("stomp://127.0.0.1:61999?"));
        assert!(xml.contains(r#"persistent="false""#));
        assert!(xml.contains(r#"useJmx="false""#));
        assert!(xml.contains(r#"dataDirectory="/x/data""#));
        // `--` may not appear inside an XML comment (Spring refuses the whole file).
        for comment in xml.split("<!--").skip(1) {
            let (inside, _) = comment.split_once("-->").unwrap();
            assert!(!inside.contains("--"), "{inside}");
        }
    }
}
