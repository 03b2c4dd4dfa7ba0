//! A network namespace the test makes itself, with a veth to the host:
//! `host_ip` on the host end, `ip` inside (a /30, routed through the host).
//! The only place besides our containers that test traffic may go. Removed
//! on drop, also when the test fails.

use std::path::Path;
use std::process::Command;

use crate::ctl::{assert_ok, run_text};

pub struct TestNetns {
    pub name: String,
    pub host_dev: String,
    pub host_ip: String,
    pub ip: String,
}

impl TestNetns {
    /// `name` and `host_dev` must be unique on the host while the test
    /// runs (fold the test's pid into them).
    pub fn new(name: &str, host_dev: &str, host_ip: &str, ip: &str) -> Self {
        let ns = TestNetns {
            name: name.to_string(),
            host_dev: host_dev.to_string(),
            host_ip: host_ip.to_string(),
            ip: ip.to_string(),
        };
        let script = format!(
            "ip netns add {name}\n\
             ip link add {host_dev} type veth peer name eth0 netns {name}\n\
             ip addr add {host_ip}/30 dev {host_dev}\n\
             ip link set {host_dev} up\n\
             ip -n {name} addr add {ip}/30 dev eth0\n\
             ip -n {name} link set eth0 up\n\
             ip -n {name} link set lo up\n\
             ip -n {name} route add default via {host_ip}"
        );
        let out = Command::new("sh")
            .args(["-ec", &script])
            .output()
            .expect("running ip");
        assert_ok(&out, &script);
        ns
    }

    /// Removes it and checks nothing of it is left.
    pub fn remove(self) {
        let (name, dev) = (self.name.clone(), self.host_dev.clone());
        drop(self);
        assert!(
            !run_text("ip", &["netns", "list"]).contains(&name),
            "netns {name} is left"
        );
        assert!(
            !Path::new(&format!("/sys/class/net/{dev}")).exists(),
            "{dev} is left"
        );
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
