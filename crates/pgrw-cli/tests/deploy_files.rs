//! The deployment files, checked by reading them: there is no Docker engine
//! or systemd on pgrw's development machines, so nothing here runs them
//! (docs/operations.md says so). What they declare is checked instead: the
//! image is multi-stage and runs `pgrw proxy --config /etc/pgrw/pgrw.toml` as
//! a user that is not root; the compose file has a primary and two streaming
//! replicas of the official image (replication set up) and pgrw on 6432 with
//! its configuration mounted, and that configuration loads and names the
//! compose services; the systemd unit runs the same command; `cargo install`
//! installs a binary named `pgrw`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pgrw_proxy::ProxyConfig;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repository().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

// ---- the Dockerfile ----

/// One instruction: its keyword and its arguments, continuation lines joined.
struct Instruction {
    keyword: String,
    arguments: String,
}

fn dockerfile() -> Vec<Vec<Instruction>> {
    let text = read("Dockerfile");
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    // Stages, each starting at a FROM.
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in joined {
        let (keyword, arguments) = line.split_once(' ').unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_uppercase(),
            arguments: arguments.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments)
        .unwrap_or_else(|error| panic!("{arguments} is not an exec-form JSON array: {error}"))
}

#[test]
fn the_image_is_built_in_one_stage_and_runs_pgrw_in_a_small_one() {
    let stages = dockerfile();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let builder = &stages[0];
    assert!(
        builder[0].arguments.ends_with(" AS builder"),
        "{}",
        builder[0].arguments
    );
    assert!(
        builder.iter().any(|i| i.keyword == "RUN"
            && i.arguments
                .contains("cargo build --release --locked -p pgrw-cli")),
        "the build stage builds the pgrw binary from the lock file"
    );
    let runtime = &stages[1];
    let base = &runtime[0].arguments;
    assert!(
        base.contains("slim") || base.contains("distroless"),
        "the runtime image is small: {base}"
    );
    assert!(
        runtime.iter().any(|i| i.keyword == "COPY"
            && i.arguments == "--from=builder /src/target/release/pgrw /usr/local/bin/pgrw"),
        "only the binary is copied into the runtime image"
    );
    assert!(!runtime.iter().any(|i| i.arguments.contains("cargo")));
}

#[test]
fn the_image_runs_the_proxy_with_its_config_as_a_user_that_is_not_root() {
    let stages = dockerfile();
    let runtime = stages.last().unwrap();
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the runtime stage sets USER");
    let uid = user.arguments.split(':').next().unwrap();
    assert!(
        uid != "root" && uid != "0" && !uid.is_empty(),
        "USER {}",
        user.arguments
    );
    // The user exists in the image with that id.
    assert!(
        runtime.iter().any(|i| i.keyword == "RUN"
            && i.arguments.contains("useradd")
            && i.arguments.contains(&format!("--uid {uid}"))),
        "a useradd creates uid {uid}"
    );
    let entrypoint = runtime.iter().find(|i| i.keyword == "ENTRYPOINT").unwrap();
    let cmd = runtime.iter().find(|i| i.keyword == "CMD").unwrap();
    let mut command = exec_form(&entrypoint.arguments);
    command.extend(exec_form(&cmd.arguments));
    assert_eq!(
        command,
        [
            "/usr/local/bin/pgrw",
            "proxy",
            "--config",
            "/etc/pgrw/pgrw.toml"
        ]
    );
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "EXPOSE" && i.arguments == "6432")
    );
}

#[test]
fn the_build_context_leaves_out_build_outputs() {
    let ignored: BTreeSet<String> = read(".dockerignore")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(ignored.contains("target/"), "{ignored:?}");
}

// ---- the compose file: a small reader for the YAML it uses ----

/// The YAML subset the compose file is written in: block mappings, block
/// sequences of scalars, flow sequences of scalars, quoted or plain scalars,
/// comments. Anything else is refused, so the file stays within it.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    Scalar(String),
    Empty,
}

impl Yaml {
    fn get(&self, key: &str) -> &Yaml {
        match self {
            Yaml::Map(entries) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            other => panic!("{other:?} is not a mapping (looking for {key:?})"),
        }
    }

    fn keys(&self) -> BTreeSet<&str> {
        match self {
            Yaml::Map(entries) => entries.iter().map(|(key, _)| key.as_str()).collect(),
            other => panic!("{other:?} is not a mapping"),
        }
    }

    fn text(&self) -> &str {
        match self {
            Yaml::Scalar(text) => text,
            other => panic!("{other:?} is not a scalar"),
        }
    }

    fn strings(&self) -> Vec<&str> {
        match self {
            Yaml::List(items) => items.iter().map(Yaml::text).collect(),
            other => panic!("{other:?} is not a list"),
        }
    }
}

struct Line {
    indent: usize,
    text: String,
}

fn yaml_lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|line| {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                return None;
            }
            assert!(!line.contains('\t'), "tabs in YAML: {line:?}");
            let text = match content.find(" #") {
                Some(at) if !content[..at].contains('"') => content[..at].trim_end(),
                _ => content,
            };
            Some(Line {
                indent: line.len() - content.len(),
                text: text.to_string(),
            })
        })
        .collect()
}

fn scalar(text: &str) -> Yaml {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Yaml::List(inner.split(',').map(scalar).collect());
    }
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return Yaml::Scalar(inner.to_string());
        }
    }
    assert!(
        !text.starts_with(['{', '|', '>', '&', '*', '!']),
        "outside the YAML subset: {text:?}"
    );
    Yaml::Scalar(text.to_string())
}

fn parse_block(lines: &[Line], at: &mut usize, indent: usize) -> Yaml {
    if lines[*at].text.starts_with("- ") {
        let mut items = Vec::new();
        while *at < lines.len() && lines[*at].indent == indent && lines[*at].text.starts_with("- ")
        {
            let item = &lines[*at].text[2..];
            assert!(
                !item.contains(": "),
                "mappings in lists are outside the subset: {item:?}"
            );
            items.push(scalar(item));
            *at += 1;
        }
        return Yaml::List(items);
    }
    let mut entries = Vec::new();
    while *at < lines.len() && lines[*at].indent == indent {
        let line = &lines[*at].text;
        let (key, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not `key: value`: {line:?}"));
        let (key, rest) = (key.trim().to_string(), rest.trim().to_string());
        *at += 1;
        let value = if !rest.is_empty() {
            scalar(&rest)
        } else if *at < lines.len() && lines[*at].indent > indent {
            let inner = lines[*at].indent;
            parse_block(lines, at, inner)
        } else {
            Yaml::Empty
        };
        entries.push((key, value));
    }
    Yaml::Map(entries)
}

fn compose() -> Yaml {
    let lines = yaml_lines(&read("deploy/docker-compose.yaml"));
    let mut at = 0;
    let document = parse_block(&lines, &mut at, 0);
    assert_eq!(at, lines.len(), "the whole file was read");
    document
}

const NODES: [&str; 3] = ["primary", "replica1", "replica2"];

#[test]
fn compose_runs_a_primary_two_replicas_and_pgrw_on_the_origins_ports() {
    let compose = compose();
    let services = compose.get("services");
    assert_eq!(
        services.keys(),
        BTreeSet::from(["primary", "replica1", "replica2", "pgrw"])
    );
    for (node, host_port) in NODES.iter().zip(["5432", "5433", "5434"]) {
        let service = services.get(node);
        assert!(
            service.get("image").text().starts_with("postgres:"),
            "{node} runs the official PostgreSQL image"
        );
        assert_eq!(
            service.get("ports").strings(),
            [format!("{host_port}:5432")],
            "{node}"
        );
    }
    let pgrw = services.get("pgrw");
    assert_eq!(pgrw.get("ports").strings(), ["6432:6432"]);
    assert_eq!(pgrw.get("build").get("context").text(), "..");
    let dockerfile = pgrw.get("build").get("dockerfile").text();
    assert!(repository().join(dockerfile).is_file(), "{dockerfile}");
    assert_eq!(
        pgrw.get("command").strings(),
        ["proxy", "--config", "/etc/pgrw/pgrw.toml"]
    );
    assert!(
        pgrw.get("volumes")
            .strings()
            .contains(&"./pgrw.toml:/etc/pgrw/pgrw.toml:ro"),
        "the configuration is mounted where the image reads it"
    );
}

#[test]
fn compose_replicas_stream_from_the_primary_through_their_own_slots() {
    let compose = compose();
    let services = compose.get("services");
    let primary = services.get("primary");
    // The primary lets replicas connect for replication…
    let init = primary
        .get("volumes")
        .strings()
        .into_iter()
        .find(|volume| volume.contains("/docker-entrypoint-initdb.d/"))
        .expect("an init script for the primary");
    let script = init.split(':').next().unwrap().trim_start_matches("./");
    assert!(read(&format!("deploy/{script}")).contains("host replication all all scram-sha-256"));
    assert!(
        primary
            .get("command")
            .strings()
            .contains(&"wal_level=replica")
    );
    // …and each replica starts from a pg_basebackup -R of it.
    let mut slots = BTreeSet::new();
    for replica in ["replica1", "replica2"] {
        let service = services.get(replica);
        let environment = service.get("environment");
        assert_eq!(environment.get("PRIMARY_HOST").text(), "primary");
        slots.insert(environment.get("SLOT_NAME").text().to_string());
        let entrypoint = service.get("entrypoint").strings();
        let script_in_container = entrypoint.last().unwrap();
        let mounted = service
            .get("volumes")
            .strings()
            .into_iter()
            .find(|volume| volume.contains(&format!(":{script_in_container}")))
            .unwrap_or_else(|| panic!("{replica}: {script_in_container} is not mounted"));
        let script = read(&format!(
            "deploy/{}",
            mounted.split(':').next().unwrap().trim_start_matches("./")
        ));
        assert!(
            script.contains("pg_basebackup")
                && script.contains(" -R ")
                && script.contains("-S \"$SLOT_NAME\""),
            "{replica}'s entrypoint copies the primary with -R through its slot"
        );
        assert!(script.contains("exec docker-entrypoint.sh postgres"));
        assert_eq!(
            environment.get("POSTGRES_PASSWORD").text(),
            primary.get("environment").get("POSTGRES_PASSWORD").text()
        );
    }
    assert_eq!(slots.len(), 2, "one slot per replica");
}

#[test]
fn the_mounted_pgrw_toml_loads_and_names_the_compose_services() {
    let path = repository().join("deploy/pgrw.toml");
    let config = ProxyConfig::load(&path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.listen_addr().unwrap().port(), 6432);
    let hosts: Vec<&str> = config.nodes.iter().map(|node| node.host.as_str()).collect();
    assert_eq!(hosts, NODES);
    assert!(config.nodes.iter().all(|node| node.port == 5432));
    let compose = compose();
    let password = compose
        .get("services")
        .get("primary")
        .get("environment")
        .get("POSTGRES_PASSWORD")
        .text()
        .to_string();
    assert_eq!(config.users[0].name, "postgres");
    assert_eq!(config.users[0].password, password);
}

// ---- systemd and cargo install ----

#[test]
fn the_systemd_unit_runs_the_proxy_as_its_own_user_and_reloads_with_sighup() {
    let unit = read("deploy/pgrw.service");
    let service: Vec<(&str, &str)> = unit
        .split("\n[")
        .find(|section| section.starts_with("Service]"))
        .expect("a [Service] section")
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        service
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no {key}= in [Service]"))
    };
    assert_eq!(
        value("ExecStart"),
        "/usr/local/bin/pgrw proxy --config /etc/pgrw/pgrw.toml"
    );
    assert_ne!(value("User"), "root");
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("KillSignal"), "SIGTERM");
}

#[test]
fn cargo_install_from_the_repository_installs_a_binary_named_pgrw() {
    let manifest: toml::Value = toml::from_str(&read("crates/pgrw-cli/Cargo.toml")).unwrap();
    let binaries = manifest["bin"].as_array().expect("[[bin]] tables");
    let names: Vec<&str> = binaries
        .iter()
        .filter_map(|bin| bin["name"].as_str())
        .collect();
    assert_eq!(names, ["pgrw"]);
    assert_eq!(env!("CARGO_BIN_EXE_pgrw").rsplit('/').next(), Some("pgrw"));
}
