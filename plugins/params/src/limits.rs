//! Resource limits: memory sizes as Docker reads them ([`parse_memory`])
//! and CPU limits ([`check_cpus`], [`cpus_to_nano`]), with their bounds.

/// Docker's smallest memory limit (its "Minimum memory limit allowed is 6MB").
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
/// Largest `cpus`: keeps nano-CPUs well inside Docker's `i64`.
pub const MAX_CPUS: f64 = 1_000_000.0;

/// Parse a memory size as Docker does, in bytes: a number (decimals
/// allowed) with an optional binary unit `b`, `k`, `m`, `g`, `t` (any case,
/// optionally followed by `i` and/or `b`: `256m`, `256MiB`, `1.5g`,
/// `268435456`). At most `i64::MAX`. The 6 MiB minimum is
/// [`Spec::memory_bytes`](crate::Spec::memory_bytes)'s.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a memory size (bytes, or with a unit: 512k, 256m, 1g)");
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => return Err(bad()),
    };
    let too_large = || format!("`{s}` is too large");
    // u128 holds 20 digits shifted by 40 bits with room to spare.
    if int.len() > 20 || frac.len() > 18 {
        return Err(too_large());
    }
    let whole: u128 = int.parse().map_err(|_| bad())?;
    let mut bytes = whole << shift;
    if !frac.is_empty() {
        let f: u128 = frac.parse().map_err(|_| bad())?;
        bytes += (f << shift) / 10u128.pow(frac.len() as u32);
    }
    if bytes > i64::MAX as u128 {
        return Err(too_large());
    }
    Ok(bytes as u64)
}

/// `cpus` as Docker's nano-CPUs, rounded to a thousandth of a CPU (finer
/// shares mean nothing to the kernel's scheduler at its default period).
pub fn cpus_to_nano(cpus: f64) -> u64 {
    ((cpus * 1000.0).round().max(0.0) as u64).saturating_mul(1_000_000)
}

/// A CPU limit: a finite number, at least 0.001 and at most [`MAX_CPUS`]
/// (the daemon refuses more CPUs than the machine has).
pub fn check_cpus(cpus: f64) -> Result<(), String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        Err(format!(
            "{cpus} is not a CPU limit: it must be more than 0 (e.g. 0.5)"
        ))
    } else if cpus_to_nano(cpus) == 0 {
        Err(format!("{cpus} is below the smallest limit, 0.001"))
    } else if cpus > MAX_CPUS {
        Err(format!("{cpus} is above {MAX_CPUS}"))
    } else {
        Ok(())
    }
}
