//! The command line: scp's conventions (`-r`, `-P`, `-l`, `-q`, `-v`, combined short flags)
//! plus the documented `-d DESTPATH`, and JetStream's own long options.

use std::fmt;

/// One side of a copy: a local path or `[USER@]HOST[:PORT]:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// A local path.
    Local(String),
    /// A path on a server.
    Remote(Remote),
}

/// `[USER@]HOST[:PORT]:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Remote {
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) path: String,
}

/// What to do. `Debug` shows only the token's first characters.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) recursive: bool,
    pub(crate) port: Option<u16>,
    pub(crate) limit_kbps: Option<u64>,
    pub(crate) policy: Option<jetstream_core::RateMode>,
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    pub(crate) dest_path: Option<String>,
    pub(crate) resume: bool,
    pub(crate) token: Option<String>,
    pub(crate) json: bool,
    pub(crate) accept_new_host: bool,
    pub(crate) sources: Vec<Location>,
    pub(crate) target: Location,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("recursive", &self.recursive)
            .field("port", &self.port)
            .field("limit_kbps", &self.limit_kbps)
            .field("policy", &self.policy)
            .field("quiet", &self.quiet)
            .field("verbose", &self.verbose)
            .field("dest_path", &self.dest_path)
            .field("resume", &self.resume)
            .field(
                "token",
                &jetstream_client::shown::ShownTokenOpt(&self.token),
            )
            .field("json", &self.json)
            .field("accept_new_host", &self.accept_new_host)
            .field("sources", &self.sources)
            .field("target", &self.target)
            .finish()
    }
}

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Help,
    Version,
    Copy(Box<Options>),
}

/// A usage error: the message for stderr (exit 2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(m: impl Into<String>) -> UsageError {
    UsageError(m.into())
}

/// Whether `arg` names a remote path: a `:` before any `/` (scp's rule), or `[v6]:`.
pub(crate) fn parse_location(arg: &str) -> Result<Location, UsageError> {
    let head_end = arg.find('/').unwrap_or(arg.len());
    let is_remote = arg.starts_with('[') || arg[..head_end].contains(':');
    if !is_remote {
        return Ok(Location::Local(arg.to_owned()));
    }
    let (user, rest) = match arg.split_once('@') {
        Some((u, r)) if !u.is_empty() && !u.contains(':') && !u.contains('/') => {
            (Some(u.to_owned()), r)
        }
        _ => (None, arg),
    };
    let (host, rest) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, r) = v6
            .split_once(']')
            .ok_or_else(|| usage(format!("{arg}: unclosed '[' in the host")))?;
        let r = r
            .strip_prefix(':')
            .ok_or_else(|| usage(format!("{arg}: expected ':' after the host")))?;
        (h.to_owned(), r)
    } else {
        let (h, r) = rest
            .split_once(':')
            .ok_or_else(|| usage(format!("{arg}: expected HOST:PATH")))?;
        (h.to_owned(), r)
    };
    if host.is_empty() {
        return Err(usage(format!("{arg}: empty host name")));
    }
    // `HOST:PORT:PATH`: digits, then a colon.
    let (port, path) = match rest.split_once(':') {
        Some((p, path)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| usage(format!("{arg}: bad port {p}")))?;
            (Some(port), path)
        }
        _ => (None, rest),
    };
    Ok(Location::Remote(Remote {
        user,
        host,
        port,
        path: path.to_owned(),
    }))
}

/// Parses `args` (without the program name).
pub(crate) fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let mut o = Options {
        recursive: false,
        port: None,
        limit_kbps: None,
        policy: None,
        quiet: false,
        verbose: false,
        dest_path: None,
        resume: false,
        token: None,
        json: false,
        accept_new_host: false,
        sources: Vec::new(),
        target: Location::Local(String::new()),
    };
    let mut positional = Vec::new();
    let mut it = args.iter().peekable();
    let mut only_paths = false;
    while let Some(arg) = it.next() {
        if only_paths || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_paths = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let mut value = |what: &str| -> Result<String, UsageError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| usage(format!("--{name} needs {what}"))),
                }
            };
            match name {
                "help" => return Ok(Parsed::Help),
                "version" => return Ok(Parsed::Version),
                "recursive" => o.recursive = true,
                "quiet" => o.quiet = true,
                "verbose" => o.verbose = true,
                "resume" => o.resume = true,
                "json" => o.json = true,
                "accept-new-host" => o.accept_new_host = true,
                "token" => o.token = Some(value("a token")?),
                "port" | "api-control-port" => o.port = Some(port(&value("a port")?)?),
                "limit" => o.limit_kbps = Some(kbps(&value("a rate in kbit/s")?)?),
                "destination-path" => o.dest_path = Some(value("a path")?),
                "policy" => {
                    let v = value("fair, fixed or background")?;
                    o.policy = Some(v.parse().map_err(|e| usage(format!("--policy {v}: {e}")))?);
                }
                _ => return Err(usage(format!("unknown option --{name}"))),
            }
            continue;
        }
        // Short flags, possibly combined (`-rqv`), the last one may take a value
        // (`-P 8886`, `-P8886`).
        let flags: Vec<char> = arg[1..].chars().collect();
        let mut i = 0;
        while i < flags.len() {
            let f = flags[i];
            let rest: String = flags[i + 1..].iter().collect();
            let mut take = |what: &str| -> Result<String, UsageError> {
                if rest.is_empty() {
                    it.next()
                        .cloned()
                        .ok_or_else(|| usage(format!("-{f} needs {what}")))
                } else {
                    Ok(rest.clone())
                }
            };
            match f {
                'r' => o.recursive = true,
                'q' => o.quiet = true,
                'v' => o.verbose = true,
                'h' => return Ok(Parsed::Help),
                'P' => {
                    o.port = Some(port(&take("a port")?)?);
                    break;
                }
                'l' => {
                    o.limit_kbps = Some(kbps(&take("a rate in kbit/s")?)?);
                    break;
                }
                'd' => {
                    o.dest_path = Some(take("a path")?);
                    break;
                }
                // scp flags that mean nothing here but scripts pass: preserve times (always
                // kept), compression, batch mode.
                'p' | 'C' | 'B' => {}
                _ => return Err(usage(format!("unknown option -{f}"))),
            }
            i += 1;
        }
    }
    if positional.len() < 2 {
        return Err(usage("give at least one SOURCE and a TARGET"));
    }
    let target = positional.pop().unwrap_or_default();
    o.target = parse_location(&target)?;
    o.sources = positional
        .iter()
        .map(|s| parse_location(s))
        .collect::<Result<_, _>>()?;
    let remote_sources = o
        .sources
        .iter()
        .filter(|s| matches!(s, Location::Remote(_)))
        .count();
    match (&o.target, remote_sources) {
        (Location::Remote(_), 0) => {}
        (Location::Local(_), n) if n == o.sources.len() => {
            let first = remote_of(&o.sources[0]);
            if o.sources.iter().any(|s| {
                let r = remote_of(s);
                (&r.user, &r.host, r.port) != (&first.user, &first.host, first.port)
            }) {
                return Err(usage("all remote sources must be on the same server"));
            }
            if o.dest_path.is_some() {
                return Err(usage("-d applies to copies to a server, not from one"));
            }
        }
        (Location::Remote(_), _) => {
            return Err(usage(
                "copies between two servers are made with `jetstream api createTransfer`",
            ))
        }
        (Location::Local(_), 0) => {
            return Err(usage(
                "neither side is remote: use cp (a remote side is HOST:PATH)",
            ))
        }
        (Location::Local(_), _) => {
            return Err(usage("sources must be all local or all on one server"))
        }
    }
    Ok(Parsed::Copy(Box::new(o)))
}

fn remote_of(l: &Location) -> &Remote {
    match l {
        Location::Remote(r) => r,
        // parse() checks every source is remote before calling this.
        Location::Local(_) => unreachable!("remote_of on a local path"),
    }
}

fn port(s: &str) -> Result<u16, UsageError> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| usage(format!("bad port {s:?}")))
}

fn kbps(s: &str) -> Result<u64, UsageError> {
    s.parse::<u64>()
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(|| usage(format!("bad rate {s:?}: give kbit/s, like scp -l")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    fn copy(args: &[&str]) -> Options {
        match p(args) {
            Ok(Parsed::Copy(o)) => *o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn remote(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Remote(Remote {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
            path: path.into(),
        })
    }

    /// Regression (issue 15, item 13): `Options` derived `Debug`, which printed the token.
    #[test]
    fn regression_debug_hides_the_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let o = copy(&["--token", token, "h:/x", "."]);
        let shown = format!("{o:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains("012345…"), "{shown}");
    }

    #[test]
    fn locations_follow_scp() {
        let cases = [
            ("/source/my_file", Location::Local("/source/my_file".into())),
            ("./a:b", Location::Local("./a:b".into())),
            ("dir/x:y", Location::Local("dir/x:y".into())),
            (
                "jetstream02.lan:/target/my_file",
                remote(None, "jetstream02.lan", None, "/target/my_file"),
            ),
            ("bob@h:rel/p", remote(Some("bob"), "h", None, "rel/p")),
            ("h:9000:/t", remote(None, "h", Some(9000), "/t")),
            ("h:", remote(None, "h", None, "")),
            ("[::1]:8886:/t", remote(None, "::1", Some(8886), "/t")),
            ("a@[fe80::1]:/t", remote(Some("a"), "fe80::1", None, "/t")),
        ];
        for (arg, want) in cases {
            assert_eq!(parse_location(arg).unwrap(), want, "{arg}");
        }
        assert!(parse_location(":/x").is_err());
        assert!(parse_location("h:0:/x").is_err());
        assert!(parse_location("[::1/x").is_err());
    }

    #[test]
    fn the_seed_examples_parse() {
        let o = copy(&["/source/my_file", "jetstream02.lan:/target/my_file"]);
        assert_eq!(o.sources, vec![Location::Local("/source/my_file".into())]);
        assert_eq!(
            o.target,
            remote(None, "jetstream02.lan", None, "/target/my_file")
        );
        let o = copy(&[
            "-d",
            "/project",
            "/source/my_file",
            "jetstream02.lan:/target/my_file",
        ]);
        assert_eq!(o.dest_path.as_deref(), Some("/project"));
    }

    #[test]
    fn flags_combine_and_take_values_like_scp() {
        let o = copy(&["-rqv", "-P9000", "-l", "50000", "a", "b", "h:/t/"]);
        assert!(o.recursive && o.quiet && o.verbose);
        assert_eq!(o.port, Some(9000));
        assert_eq!(o.limit_kbps, Some(50_000));
        assert_eq!(o.sources.len(), 2);
        let o = copy(&[
            "--json",
            "--token=abc",
            "--resume",
            "--accept-new-host",
            "--policy=background",
            "-rd/p",
            "a",
            "h:",
        ]);
        assert!(o.json && o.resume && o.accept_new_host && o.recursive);
        assert_eq!(o.policy, Some(jetstream_core::RateMode::Background));
        assert_eq!(o.token.as_deref(), Some("abc"));
        assert_eq!(o.dest_path.as_deref(), Some("/p"));
        let o = copy(&["--", "-weird-name", "h:/t"]);
        assert_eq!(o.sources, vec![Location::Local("-weird-name".into())]);
    }

    #[test]
    fn pull_form_and_usage_errors() {
        let o = copy(&["u@h:/a", "u@h:/b", "."]);
        assert_eq!(o.target, Location::Local(".".into()));
        assert_eq!(o.sources.len(), 2);
        for bad in [
            &["onlyone"][..],
            &["a", "b"],
            &["h:/a", "g:/b", "."],
            &["h:/a", "g:/b"],
            &["-x", "a", "h:/b"],
            &["--nope", "a", "h:/b"],
            &["-P", "http", "a", "h:/b"],
            &["-l", "0", "a", "h:/b"],
            &["--policy", "greedy", "a", "h:/b"],
            &["-d", "/p", "h:/a", "."],
            &["a", "h:/a", "."],
            &["-P"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["-h"]), Ok(Parsed::Help));
    }
}
