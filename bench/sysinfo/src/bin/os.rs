//! The same readings through reliability-os (its own /proc and statvfs readers).
use reliability_core::subset::{Group, Subset};
use reliability_os::{facts, procs};
use std::time::{Duration, Instant};

fn reading(sample: Duration) -> (facts::Facts, Vec<procs::ProcInfo>) {
    let subset: Subset = [Group::Cpu, Group::Memory, Group::Mounts, Group::Load]
        .into_iter()
        .collect();
    (facts::gather(&subset, sample), procs::list_processes())
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "bench" {
        let n: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(100);
        let t = Instant::now();
        let mut procs = 0;
        for _ in 0..n {
            procs += reading(Duration::ZERO).1.len();
        }
        let per = t.elapsed() / n;
        let subset: Subset = [Group::Cpu, Group::Memory, Group::Mounts, Group::Load]
            .into_iter()
            .collect();
        let t2 = Instant::now();
        for _ in 0..n {
            let _ = facts::gather(&subset, Duration::ZERO);
        }
        let facts_per = t2.elapsed() / n;
        let t3 = Instant::now();
        for _ in 0..n {
            let _ = procs::list_processes();
        }
        let procs_per = t3.elapsed() / n;
        let only: Subset = [Group::Cpu, Group::Memory, Group::Load].into_iter().collect();
        let t4 = Instant::now();
        for _ in 0..n {
            let _ = facts::gather(&only, Duration::ZERO);
        }
        let nomounts_per = t4.elapsed() / n;
        println!("os split: facts {facts_per:?} (without mounts {nomounts_per:?}), processes {procs_per:?}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .collect();
        println!(
            "os: {n} readings, {per:?} each, {} procs avg, {rss:?}",
            procs / n as usize
        );
        return;
    }
    let (f, ps) = reading(Duration::from_millis(500));
    let cpu = f.cpu.as_ref().and_then(|g| g.ok()).unwrap();
    let mem = f.memory.as_ref().and_then(|g| g.ok()).unwrap();
    let load = f.load.as_ref().and_then(|g| g.ok()).unwrap();
    println!("cpu count {} usage {:?}%", cpu.count, cpu.usage_percent);
    println!(
        "mem total {} free {} available {} used {} (KiB: total {} used {} free {} avail {})",
        mem.total,
        mem.free,
        mem.available,
        mem.used,
        mem.total / 1024,
        mem.used / 1024,
        mem.free / 1024,
        mem.available / 1024
    );
    println!("swap total {} used {}", mem.swap_total, mem.swap_used);
    println!("load {} {} {}", load.load1, load.load5, load.load15);
    for m in &f.mounts.as_ref().and_then(|g| g.ok()).unwrap().filesystems {
        println!(
            "disk {} {} total {:?} used {:?} avail {:?}",
            m.mount_point,
            m.fstype,
            m.usage.size_total.map(|b| b / 1024),
            m.usage.size_used.map(|b| b / 1024),
            m.usage.size_available.map(|b| b / 1024)
        );
    }
    println!("procs {}", ps.len());
    for p in ps.iter().filter(|p| p.pid == 1 || p.pid == std::process::id()) {
        println!(
            "proc {} {} rss_kib {} user {:?}",
            p.pid,
            p.name,
            p.rss_bytes / 1024,
            p.user
        );
    }
}
