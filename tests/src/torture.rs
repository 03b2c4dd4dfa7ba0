//! What the torture tests share: their scale, a replayable seed and a tiny
//! deterministic PRNG.

/// How many rounds to run: `TORTURE_SCALE` unset gives `ci` (what CI runs),
/// `full` gives `full` (`make torture`), a number that many.
pub fn scale(ci: usize, full: usize) -> usize {
    match std::env::var("TORTURE_SCALE").as_deref() {
        Ok("full") => full,
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("TORTURE_SCALE={n:?}: `full` or a number")),
        Err(_) => ci,
    }
}

/// `TORTURE_SEED` (hex) to replay a run, else a fresh one.
pub fn seed() -> u64 {
    match std::env::var("TORTURE_SEED") {
        Ok(s) => {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("TORTURE_SEED={s:?}: hex"))
        }
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64;
            t ^ (u64::from(std::process::id()) << 32) | 1
        }
    }
}

/// Prints the seed when the test fails, so the run can be replayed.
pub struct SeedOnFailure {
    pub test: &'static str,
    pub seed: u64,
}

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} failed with TORTURE_SEED={:x} TORTURE_SCALE={}",
                self.test,
                self.seed,
                std::env::var("TORTURE_SCALE").unwrap_or_default()
            );
        }
    }
}

/// xorshift64*: tiny, deterministic, good enough to pick test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Bytes that are never NUL.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| b'!' + (self.next_u64() % 94) as u8)
            .collect()
    }
}
