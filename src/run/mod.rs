//! `copy_bom run`: runs a program inside an image as the enclave will see it (the image as
//! `/`, nothing of the host visible, a fresh `/proc`, a minimal `/dev`, a private `/tmp`, the
//! image itself never modified), traced like `trace`, and names every path the program looked
//! for and did not find, so that a bom can be completed before `occlum build`.
//!
//! [`sandbox`] holds the processes and the namespaces; this module decides what the program
//! gets (its environment, whether an Occlum instance lets it run) and what the report says.

mod sandbox;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Status};
use crate::fs::ImageRoot;
use crate::instance::config::OcclumConfig;
use crate::trace::tracer::Access;
use crate::trace::{Ending, TraceOptions, Traced, Use};
use sandbox::Message;

/// The network the program sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Net {
    /// No interface at all (a private network namespace, its loopback down).
    None,
    /// Only its own loopback interface (a private network namespace).
    #[default]
    Loopback,
    /// The host's network.
    Host,
}

/// What `run` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The image root.
    pub root: PathBuf,
    /// The instance's `Occlum.json`: its environment is the program's, and its entry points
    /// decide which programs may run. Default: the one beside `root` when `root` is an
    /// instance's `image/`.
    pub instance: Option<PathBuf>,
    pub net: Net,
    /// `NAME=VALUE` added to (or replacing in) the program's environment.
    pub env: Vec<OsString>,
    /// The program (an image path, or a name looked up in the run's `PATH`) and its arguments.
    pub command: Vec<OsString>,
}

/// What the sandbox is told: everything decided, nothing left to look up on the host.
#[derive(Debug)]
struct Request {
    image: PathBuf,
    net: Net,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<OsString>,
    /// The directories programs may run from (an Occlum instance's `entry_points`).
    entry_points: Option<Vec<String>>,
}

/// A path the program looked for and did not find in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub path: PathBuf,
    pub how: Use,
    /// The program that looked (its path in the image).
    pub by: Option<PathBuf>,
    /// The same path is a regular file on the host: a bom can copy it.
    pub on_host: bool,
}

impl Miss {
    /// Sort key: what a bom can add first (libraries, then other files of the host), then
    /// what the host lacks too; system trees last.
    fn rank(&self) -> u8 {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match (self.on_host, name.contains(".so")) {
            (_, _) if is_system(&self.path) => 3,
            (true, true) => 0,
            (true, false) => 1,
            (false, _) => 2,
        }
    }
}

/// Trees that the image does not hold and the run provides (or deliberately lacks: `/sys`).
fn is_system(p: &Path) -> bool {
    ["/proc", "/sys", "/dev", "/run"]
        .iter()
        .any(|t| p.starts_with(t))
}

/// How a run went.
#[derive(Debug)]
pub struct RunOutcome {
    pub ending: Ending,
    /// Most relevant first (see [`Miss::rank`]).
    pub misses: Vec<Miss>,
    /// How the image was entered, when it differs from the usual (read-only, no `/proc`).
    pub notes: Vec<String>,
}

/// The environment of a program when the image is not an Occlum instance's.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs the command in the image and reports. Err: the image cannot be entered (125), an
/// instance refuses the program (126), or the options are wrong.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let Some((program, args)) = opts.command.split_first() else {
        return Err(Error::new(Status::Usage, "run: no program to run"));
    };
    let image = std::fs::canonicalize(&opts.root)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            Error::new(
                Status::NotFound,
                format!("run: {} is not a directory", opts.root.display()),
            )
        })?;
    let config = match opts
        .instance
        .clone()
        .or_else(|| OcclumConfig::beside(&image))
    {
        Some(path) => Some(
            OcclumConfig::read(&path)
                .map_err(|e| Error::new(Status::NotFound, format!("run: {e}")))?,
        ),
        None => None,
    };
    let mut env = environment(config.as_ref(), |name| std::env::var_os(name));
    for e in &opts.env {
        let name = e.as_encoded_bytes().split(|&b| b == b'=').next();
        if !e.as_encoded_bytes().contains(&b'=') {
            return Err(Error::new(
                Status::Usage,
                format!("run: --env {} is not NAME=VALUE", e.to_string_lossy()),
            ));
        }
        env.retain(|old| old.as_encoded_bytes().split(|&b| b == b'=').next() != name);
        env.push(e.clone());
    }
    let req = Request {
        image,
        net: opts.net,
        program: program.clone(),
        args: args.to_vec(),
        env,
        entry_points: config.map(|c| c.entry_points),
    };
    sandbox::ignore_interrupts();
    let messages = sandbox::enter(&req);
    sandbox::restore_interrupts();
    let messages = messages.map_err(|e| {
        Error::new(
            Status::CannotEnter,
            format!("run: cannot start the run: {e}"),
        )
    })?;
    outcome(messages)
}

/// The program's environment: the instance's `env.default` and the host's values of its
/// `env.untrusted` names (as Occlum passes them), or a plain `PATH`, `HOME` and the host's
/// `TERM`.
fn environment(
    config: Option<&OcclumConfig>,
    host: impl Fn(&str) -> Option<OsString>,
) -> Vec<OsString> {
    let pair = |k: &str, v: OsString| {
        let mut s = OsString::from(format!("{k}="));
        s.push(v);
        s
    };
    match config {
        Some(c) => {
            let mut env: Vec<OsString> = c
                .env
                .iter()
                .map(|(k, v)| OsString::from(format!("{k}={v}")))
                .collect();
            for name in &c.untrusted_env {
                if let Some(v) = host(name) {
                    env.push(pair(name, v));
                }
            }
            env
        }
        None => {
            let mut env = vec![OsString::from(DEFAULT_PATH), OsString::from("HOME=/root")];
            if let Some(term) = host("TERM") {
                env.push(pair("TERM", term));
            }
            env
        }
    }
}

fn outcome(messages: Vec<Message>) -> Result<RunOutcome> {
    let mut misses = Vec::new();
    let mut notes = Vec::new();
    let mut ending = None;
    for m in messages {
        match m {
            Message::Note(n) => notes.push(n),
            Message::Miss { path, how, by } => {
                let on_host = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
                misses.push(Miss {
                    path,
                    how,
                    by,
                    on_host,
                });
            }
            Message::Ended(e) => ending = Some(e),
            Message::Failed(status, why) => {
                let status = if status == sandbox::REFUSED {
                    Status::Refused
                } else {
                    Status::CannotEnter
                };
                return Err(Error::new(status, format!("run: {why}")));
            }
        }
    }
    let Some(ending) = ending else {
        return Err(Error::new(
            Status::CannotEnter,
            "run: the run ended before the program did (was copy_bom's helper killed?)",
        ));
    };
    misses.sort_by(|a, b| (a.rank(), &a.path).cmp(&(b.rank(), &b.path)));
    Ok(RunOutcome {
        ending,
        misses,
        notes,
    })
}

impl RunOutcome {
    /// The misses a bom can fix (files of the host) as a bom fragment, leaving out what the
    /// image at `root` already has (a link the host path went through, say).
    pub fn suggestion(&self, root: &Path, command: &[OsString]) -> Result<String> {
        let accesses = self
            .misses
            .iter()
            .filter(|m| m.on_host && !is_system(&m.path))
            .map(|m| Access {
                path: m.path.clone(),
                how: Use::Read,
                by: m.by.clone(),
                found: true,
            })
            .collect();
        let keep = TraceOptions { keep_system: true };
        let mut traced: Traced = crate::trace::select(accesses, self.ending, &keep);
        let image = ImageRoot::open_existing(root).map_err(|e| {
            Error::new(
                Status::NotFound,
                format!("run: cannot open {}: {e}", root.display()),
            )
        })?;
        let mut present: Vec<PathBuf> = traced
            .links
            .keys()
            .chain(traced.files.keys())
            .filter(|p| image.lstat(p).is_ok_and(|s| s.is_some()))
            .cloned()
            .collect();
        present.sort();
        traced.without(&present);
        Ok(crate::trace::fragment(&traced, command))
    }
}

/// The report: one line per miss, what a bom can add first; at most `limit` of the misses the
/// host cannot fill either (they are mostly probes of optional files), then a count.
pub fn report_lines(outcome: &RunOutcome, limit: usize) -> Vec<String> {
    let mut lines: Vec<String> = outcome.notes.iter().map(|n| format!("run: {n}")).collect();
    if outcome.misses.is_empty() {
        return lines;
    }
    lines.push(format!(
        "run: {} paths the program looked for are not in the image:",
        outcome.misses.len()
    ));
    let mut others = 0;
    for m in &outcome.misses {
        if !m.on_host && others >= limit {
            others += 1;
            continue;
        }
        if !m.on_host {
            others += 1;
        }
        let how = match m.how {
            Use::Read => "opened",
            Use::Exec => "executed",
            Use::Probe => "looked at",
            Use::Write => "written",
        };
        let by =
            m.by.as_ref()
                .map_or(String::new(), |b| format!(" by {}", b.display()));
        let host = if m.on_host {
            "on the host"
        } else {
            "not on the host either"
        };
        lines.push(format!("  {} ({how}{by}; {host})", m.path.display()));
    }
    if others > limit {
        lines.push(format!(
            "  … and {} more not on the host either (-v lists them)",
            others - limit
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_gives_its_environment_and_the_untrusted_names_from_the_host() {
        let config = OcclumConfig {
            env: vec![("OCCLUM".into(), "yes".into()), ("TZ".into(), "UTC".into())],
            untrusted_env: vec!["EXAMPLE".into(), "ABSENT".into()],
            ..OcclumConfig::default()
        };
        let host = |name: &str| (name == "EXAMPLE").then(|| OsString::from("from host"));
        assert_eq!(
            environment(Some(&config), host),
            vec![
                OsString::from("OCCLUM=yes"),
                OsString::from("TZ=UTC"),
                OsString::from("EXAMPLE=from host")
            ]
        );
        let plain = environment(None, |_| None);
        assert_eq!(plain[0], OsString::from(DEFAULT_PATH));
    }

    #[test]
    fn what_a_bom_can_add_comes_first() {
        let m = |p: &str, on_host| Miss {
            path: PathBuf::from(p),
            how: Use::Read,
            by: None,
            on_host,
        };
        let outcome = outcome(vec![
            Message::Miss {
                path: "/nonexistent/a".into(),
                how: Use::Read,
                by: None,
            },
            Message::Ended(Ending::Exited(1)),
        ])
        .unwrap();
        assert_eq!(outcome.misses, vec![m("/nonexistent/a", false)]);
        let mut misses = vec![
            m("/sys/x", false),
            m("/zz", false),
            m("/etc/b", true),
            m("/usr/lib/libz.so.1", true),
        ];
        misses.sort_by_key(|m| m.rank());
        let order: Vec<_> = misses.iter().map(|m| m.path.to_str().unwrap()).collect();
        assert_eq!(order, ["/usr/lib/libz.so.1", "/etc/b", "/zz", "/sys/x"]);
        let lines = report_lines(
            &RunOutcome {
                ending: Ending::Exited(0),
                misses,
                notes: vec![],
            },
            1,
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(lines[4].contains("1 more"), "{lines:?}");
    }
}
