//! Times store-time compression of one body per coding (bench helper).
//! Arguments: BODY_BYTES ITERATIONS.

use std::time::Instant;

use rampart_config::Encoding;

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (len, iterations) = match args.as_slice() {
        [l, i] => (*l, *i),
        _ => (1024, 2000),
    };
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let body: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % 64) as usize]
        })
        .collect();
    for enc in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
        let started = Instant::now();
        let mut out = 0;
        for _ in 0..iterations {
            out = rampart_cache::encoding::compress(&body, enc)
                .expect("compress")
                .len();
        }
        let per = started.elapsed() / iterations as u32;
        println!("{:5} {len} B -> {out} B: {per:?} per body", enc.as_str());
    }
}
