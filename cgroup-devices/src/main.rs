//! cgroup-devices attach CGROUP_DIR RULE...: enforce a device whitelist on a
//! cgroup v2 group, where there are no devices.allow/deny files, with a
//! BPF_CGROUP_DEVICE program. RULE is cgroup v1's devices.allow syntax
//! (`c 1:3 rwm`, `c 136:* rwm`), so the setup hooks keep one whitelist for
//! both hierarchies. Run before any process joins the group; everything not
//! listed is refused (EPERM on open and mknod).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bpf;
mod program;
mod rules;

use std::path::Path;
use std::process::ExitCode;

use rules::Rule;

const USAGE: &str = "usage: cgroup-devices attach CGROUP_DIR RULE... (RULE as in devices.allow, e.g. \"c 1:3 rwm\")";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("attach") if args.len() >= 3 => {
            let rules: Result<Vec<Rule>, _> = args[2..].iter().map(|r| r.parse()).collect();
            let rules = match rules {
                Ok(rules) => rules,
                Err(e) => {
                    eprintln!("cgroup-devices: {e}");
                    return ExitCode::from(2);
                }
            };
            match bpf::attach(Path::new(&args[1]), &program::compile(&rules)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cgroup-devices: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
