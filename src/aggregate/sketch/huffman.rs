//! Canonical Huffman coding of small symbols (HyperLogLog registers, 0..=63) for the compact
//! dense sketch format.
//!
//! Registers of a dense HyperLogLog crowd around `log2(n / m)`: their entropy is about 3 bits,
//! half of the 6 bits a packed register takes. The encoding is a table of code lengths (one byte
//! per symbol up to the largest present) followed by the codes, most significant bit first, in
//! one bit stream padded with zeros. Lengths come from a Huffman tree built with ties broken by
//! symbol, and codes are assigned canonically, so equal inputs give equal bytes; [`decode`]
//! re-encodes what it read and rejects anything that differs.

use super::codec::SketchError;

/// Longest code: Huffman depth is below 1.44 log2(count) + 2, so 48 covers any count < 2^32.
const MAX_LEN: u8 = 48;

fn err(msg: &str) -> SketchError {
    SketchError(format!("corrupt coded HLL registers: {msg}"))
}

/// Code lengths per symbol (0 for absent symbols) from symbol counts.
fn code_lengths(counts: &[u64]) -> Vec<u8> {
    let present: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] > 0).collect();
    let mut lens = vec![0u8; counts.len()];
    if present.len() == 1 {
        lens[present[0]] = 1;
        return lens;
    }
    // Nodes: (weight, smallest symbol below, id); leaves first, then internal nodes.
    let mut parent: Vec<usize> = vec![usize::MAX; 2 * present.len()];
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize, usize)>> = present
        .iter()
        .enumerate()
        .map(|(id, &s)| std::cmp::Reverse((counts[s], s, id)))
        .collect();
    let mut next = present.len();
    while heap.len() > 1 {
        let (Some(std::cmp::Reverse(a)), Some(std::cmp::Reverse(b))) = (heap.pop(), heap.pop())
        else {
            break;
        };
        parent[a.2] = next;
        parent[b.2] = next;
        heap.push(std::cmp::Reverse((a.0 + b.0, a.1.min(b.1), next)));
        next += 1;
    }
    for (id, &s) in present.iter().enumerate() {
        let mut depth = 0u8;
        let mut node = id;
        while parent[node] != usize::MAX {
            node = parent[node];
            depth += 1;
        }
        lens[s] = depth;
    }
    lens
}

/// Canonical codes for `lens`: shorter codes first, then by symbol.
fn canonical_codes(lens: &[u8]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..lens.len()).filter(|&s| lens[s] > 0).collect();
    order.sort_by_key(|&s| (lens[s], s));
    let mut codes = vec![0u64; lens.len()];
    let mut code = 0u64;
    let mut prev = 0u8;
    for (i, &s) in order.iter().enumerate() {
        if i > 0 {
            code = (code + 1) << (lens[s] - prev);
        } else {
            code <<= lens[s];
        }
        prev = lens[s];
        codes[s] = code;
    }
    codes
}

/// Append the coded form of `symbols` (each below 64) to `out`.
pub fn encode(symbols: &[u8], out: &mut Vec<u8>) {
    let mut counts = [0u64; 64];
    for &s in symbols {
        counts[(s & 63) as usize] += 1;
    }
    let top = counts.iter().rposition(|&c| c > 0).map_or(0, |t| t + 1);
    let lens = code_lengths(&counts[..top]);
    let codes = canonical_codes(&lens);
    out.push(top as u8);
    out.extend_from_slice(&lens);
    let mut acc: u128 = 0;
    let mut bits: u32 = 0;
    for &s in symbols {
        let s = (s & 63) as usize;
        acc = (acc << lens[s]) | codes[s] as u128;
        bits += lens[s] as u32;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u128 << bits) - 1;
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
}

/// Decode `count` symbols coded by [`encode`]; the input must be exactly what `encode` writes.
pub fn decode(bytes: &[u8], count: usize) -> Result<Vec<u8>, SketchError> {
    let top = *bytes.first().ok_or_else(|| err("empty"))? as usize;
    if top == 0 || top > 64 {
        return Err(err("bad symbol count"));
    }
    let lens = bytes
        .get(1..1 + top)
        .ok_or_else(|| err("truncated length table"))?;
    if lens.iter().any(|&l| l > MAX_LEN) {
        return Err(err("code too long"));
    }
    let codes = canonical_codes(lens);
    // Decoding table: per length, (first code, symbols in canonical order).
    let mut by_len: Vec<Vec<usize>> = vec![Vec::new(); MAX_LEN as usize + 1];
    let mut order: Vec<usize> = (0..top).filter(|&s| lens[s] > 0).collect();
    order.sort_by_key(|&s| (lens[s], s));
    for &s in &order {
        by_len[lens[s] as usize].push(s);
    }
    let body = &bytes[1 + top..];
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize; // bit position
    let total = body.len() * 8;
    while out.len() < count {
        let mut code = 0u64;
        let mut len = 0usize;
        loop {
            if pos >= total {
                return Err(err("truncated bit stream"));
            }
            let bit = (body[pos / 8] >> (7 - pos % 8)) & 1;
            pos += 1;
            code = (code << 1) | bit as u64;
            len += 1;
            if len > MAX_LEN as usize {
                return Err(err("no code matches"));
            }
            if let Some(first) = by_len[len].first() {
                let base = codes[*first];
                if code >= base && code - base < by_len[len].len() as u64 {
                    out.push(by_len[len][(code - base) as usize] as u8);
                    break;
                }
            }
        }
    }
    let mut again = Vec::with_capacity(bytes.len());
    encode(&out, &mut again);
    if again != bytes {
        return Err(err("not the canonical encoding"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_every_other_byte_string() {
        let mut x = 7u64;
        for case in 0..50 {
            let n = 1 + case * 97;
            let symbols: Vec<u8> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = (x >> 33) as u32;
                    match case % 4 {
                        0 => 5,
                        1 => (r % 3) as u8 + 10,
                        2 => (r.trailing_zeros().min(50) + 1) as u8,
                        _ => (r % 64) as u8,
                    }
                })
                .collect();
            let mut bytes = Vec::new();
            encode(&symbols, &mut bytes);
            assert_eq!(decode(&bytes, symbols.len()).unwrap(), symbols);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], symbols.len()).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer, symbols.len()).is_err());
            for i in 0..bytes.len().min(40) {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0x10;
                if let Ok(d) = decode(&flipped, symbols.len()) {
                    assert_ne!(d, symbols, "a changed byte decoded to the same symbols");
                }
            }
        }
    }

    #[test]
    fn hll_like_registers_take_about_three_bits() {
        let mut x = 1u64;
        let regs: Vec<u8> = (0..16384)
            .map(|_| {
                // The max of ~60 geometric variables, as a register at n/m = 60.
                let mut best = 0u32;
                for _ in 0..60 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    best = best.max((x >> 20).leading_zeros() - 19);
                }
                best as u8
            })
            .collect();
        let mut bytes = Vec::new();
        encode(&regs, &mut bytes);
        let bits = bytes.len() as f64 * 8.0 / regs.len() as f64;
        assert!(bits < 3.3, "{bits} bits per register");
    }
}
