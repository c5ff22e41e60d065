//! `network`: every interface's counters (`/proc/net/dev`), link state (`/sys/class/net`)
//! and addresses (`getifaddrs(3)`).
//!
//! Counters run since the interface appeared; rates need two readings, which is the
//! monitor's business, not a fact's.

use super::Host;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// The `network` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    /// One entry per interface, in kernel (ifindex) order.
    pub interfaces: Vec<Interface>,
}

/// One network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Interface {
    /// Interface name (`eth0`, `ens3`, `lo`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
    /// RFC 2863 state (`up`, `down`, `unknown` (loopback, some virtual links),
    /// `lowerlayerdown`, `dormant`, ...); null if unreadable.
    pub operstate: Option<String>,
    /// MTU in bytes; null if unreadable.
    pub mtu: Option<u32>,
    /// Hardware address; null for interfaces without one (tunnels, WireGuard).
    pub mac: Option<String>,
    /// IPv4 addresses.
    pub ipv4: Vec<Address>,
    /// IPv6 addresses, link-local ones included.
    pub ipv6: Vec<Address>,
}

/// An address with its prefix length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Address {
    /// The address (`192.0.2.2`, `fe80::fc:ff:fe00:1`).
    pub address: String,
    /// Prefix length of its network (`24`, `64`).
    pub prefix: u8,
}

/// Reads `/proc/net/dev`: the counters of each interface, other fields left empty.
/// Malformed lines (and the two header lines) are skipped.
pub fn parse_net_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let n: Vec<u64> = counters
                .split_ascii_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            let at = |i: usize| n.get(i).copied();
            // Receive: bytes packets errs drop fifo frame compressed multicast; then
            // transmit: bytes packets errs drop fifo colls carrier compressed.
            Some(Interface {
                name: name.trim().to_string(),
                rx_bytes: at(0)?,
                rx_packets: at(1)?,
                rx_errors: at(2)?,
                rx_dropped: at(3)?,
                tx_bytes: at(8)?,
                tx_packets: at(9)?,
                tx_errors: at(10)?,
                tx_dropped: at(11)?,
                ..Interface::default()
            })
        })
        .collect()
}

pub(super) fn gather(host: &Host) -> Result<Network, String> {
    let mut interfaces = parse_net_dev(&host.read("/proc/net/dev")?);
    let mut addresses = addresses();
    for interface in &mut interfaces {
        let attribute = |name: &str| host.read_line(format!("/sys/class/net/{}/{name}", interface.name));
        interface.operstate = attribute("operstate");
        interface.mtu = attribute("mtu").and_then(|m| m.parse().ok());
        interface.mac = attribute("address");
        for (ip, prefix) in addresses.remove(&interface.name).unwrap_or_default() {
            let address = Address {
                address: ip.to_string(),
                prefix,
            };
            match ip {
                IpAddr::V4(_) => interface.ipv4.push(address),
                IpAddr::V6(_) => interface.ipv6.push(address),
            }
        }
    }
    Ok(Network { interfaces })
}

/// Addresses by interface name; empty if `getifaddrs` fails (addresses are a bonus).
fn addresses() -> HashMap<String, Vec<(IpAddr, u8)>> {
    let mut by_name: HashMap<String, Vec<(IpAddr, u8)>> = HashMap::new();
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return by_name;
    };
    for entry in list {
        let (Some(address), Some(netmask)) = (entry.address, entry.netmask) else {
            continue;
        };
        let pair = match (
            address.as_sockaddr_in(),
            netmask.as_sockaddr_in(),
            address.as_sockaddr_in6(),
            netmask.as_sockaddr_in6(),
        ) {
            (Some(a), Some(m), _, _) => (IpAddr::V4(a.ip()), prefix_len(&m.ip().octets())),
            (_, _, Some(a), Some(m)) => (IpAddr::V6(a.ip()), prefix_len(&m.ip().octets())),
            _ => continue,
        };
        by_name.entry(entry.interface_name).or_default().push(pair);
    }
    by_name
}

/// The prefix length of a netmask: its leading one bits.
fn prefix_len(mask: &[u8]) -> u8 {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    u8::try_from(ones).unwrap_or(u8::MAX)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::facts) const NET_DEV_HEADER: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
";

    /// `expected`: one line per interface, `name rx_bytes rx_packets rx_errors rx_dropped
    /// tx_bytes tx_packets tx_errors tx_dropped`.
    fn check(text: &str, expected: &[&str]) {
        let got: Vec<String> = parse_net_dev(text)
            .iter()
            .map(|i| {
                format!(
                    "{} {} {} {} {} {} {} {} {}",
                    i.name,
                    i.rx_bytes,
                    i.rx_packets,
                    i.rx_errors,
                    i.rx_dropped,
                    i.tx_bytes,
                    i.tx_packets,
                    i.tx_errors,
                    i.tx_dropped
                )
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn net_dev() {
        // Captured on the development VM.
        check(
            &(NET_DEV_HEADER.to_string()
                + "    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ifb1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 192267520    7538    0    0    0     0          0         0   445944    4625    0    0    0     0       0          0
"),
            &["lo 3193 29 0 0 3193 29 0 0", "ifb0 0 0 0 0 0 0 0 0", "ifb1 0 0 0 0 0 0 0 0", "eth0 192267520 7538 0 0 445944 4625 0 0"],
        );
        // Counters wide enough to touch the name (old kernels printed no space), errors
        // and drops in their columns, a VLAN name with a dot.
        check(
            "eth0:123456789012 10 1 2 3 4 5 6 987654321 20 7 8 9 10 11 12\nbond0.100: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n",
            &["eth0 123456789012 10 1 2 987654321 20 7 8", "bond0.100 1 2 3 4 5 6 7 8"],
        );
        check("eth0: 1 2 3\nbroken line\n", &[]);
        check("", &[]);
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        assert_eq!(prefix_len(&[255, 0, 0, 0]), 8);
        assert_eq!(prefix_len(&[0; 4]), 0);
        assert_eq!(prefix_len(&[255; 16]), 128);
    }
}
