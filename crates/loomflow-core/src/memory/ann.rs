//! [`Hnsw`]: an in-process approximate nearest-neighbour index over cosine
//! similarity (Malkov & Yashunin's hierarchical navigable small worlds),
//! with deletion by tombstone and filtered search.
//!
//! Written here rather than taken from a crate: the maintained HNSW crates
//! either build a static index (no insert after build), have no deletion, or
//! pull a logger and memory-mapping stack into a library. Memory needs
//! incremental inserts, tombstones for `forget`, and filters (time range,
//! excluded session) applied during the walk so a filtered query still
//! returns its full `limit`.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Neighbours per node above layer 0.
const M: usize = 16;
/// Neighbours per node on layer 0.
const M0: usize = 2 * M;
/// Candidate list size while inserting.
const EF_CONSTRUCTION: usize = 100;
/// The highest layer a node can reach.
const MAX_LEVEL: usize = 16;

/// An HNSW index of unit vectors; nodes are numbered 0, 1, 2, … in
/// insertion order.
///
/// ```
/// use loomflow_core::memory::Hnsw;
/// let mut index = Hnsw::new(2);
/// let east = index.insert(&[1.0, 0.0]);
/// let north = index.insert(&[0.0, 1.0]);
/// let hits = index.search(&[0.9, 0.1], 1, 16, |_| true);
/// assert_eq!(hits[0].0, east);
/// index.remove(east);
/// assert_eq!(index.search(&[0.9, 0.1], 1, 16, |_| true)[0].0, north);
/// ```
#[derive(Debug, Clone)]
pub struct Hnsw {
    dim: usize,
    /// Every node's vector, normalised, back to back.
    vectors: Vec<f32>,
    /// Layer-0 neighbours, `M0` slots per node.
    layer0: Vec<u32>,
    layer0_len: Vec<u8>,
    /// Neighbours on layers 1..=level, per node.
    upper: Vec<Vec<Vec<u32>>>,
    deleted: Vec<bool>,
    deleted_count: usize,
    entry: Option<u32>,
    top_level: usize,
    rng: u64,
}

/// A node and its distance to the query (1 - cosine), ordered by distance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near {
    dist: f32,
    id: u32,
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.id.cmp(&other.id))
    }
}

/// Which nodes a walk has seen: a generation stamp per node, reused across
/// searches on the same thread, so a search allocates nothing once warm.
struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
    }

    /// Marks `id`; true if it was not marked yet.
    fn insert(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        let fresh = *m != self.generation;
        *m = self.generation;
        fresh
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { marks: Vec::new(), generation: 0 }) };
}

/// Dot product in eight lanes, which the compiler vectorises.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// `v` scaled to length 1 (unchanged when all zeros).
pub(crate) fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

impl Hnsw {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            vectors: Vec::new(),
            layer0: Vec::new(),
            layer0_len: Vec::new(),
            upper: Vec::new(),
            deleted: Vec::new(),
            deleted_count: 0,
            entry: None,
            top_level: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Nodes inserted, removed ones included.
    pub fn len(&self) -> usize {
        self.deleted.len()
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty()
    }

    /// Nodes removed (tombstoned) so far.
    pub fn removed(&self) -> usize {
        self.deleted_count
    }

    fn vector(&self, id: u32) -> &[f32] {
        let at = id as usize * self.dim;
        &self.vectors[at..at + self.dim]
    }

    /// The stored (normalised) vector of node `id`; empty for an id never
    /// inserted.
    pub fn vector_of(&self, id: u32) -> &[f32] {
        let at = id as usize * self.dim;
        self.vectors.get(at..at + self.dim).unwrap_or(&[])
    }

    fn dist(&self, q: &[f32], id: u32) -> f32 {
        1.0 - dot(q, self.vector(id))
    }

    fn neighbours(&self, id: u32, level: usize) -> &[u32] {
        if level == 0 {
            let at = id as usize * M0;
            &self.layer0[at..at + self.layer0_len[id as usize] as usize]
        } else {
            &self.upper[id as usize][level - 1]
        }
    }

    fn set_neighbours(&mut self, id: u32, level: usize, list: &[u32]) {
        if level == 0 {
            let at = id as usize * M0;
            let n = list.len().min(M0);
            self.layer0[at..at + n].copy_from_slice(&list[..n]);
            self.layer0_len[id as usize] = n as u8;
        } else {
            let slot = &mut self.upper[id as usize][level - 1];
            slot.clear();
            slot.extend_from_slice(list);
        }
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*, then the geometric level distribution with mL = 1/ln(M).
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let uniform = ((r >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let ml = 1.0 / (M as f64).ln();
        ((-uniform.ln() * ml) as usize).min(MAX_LEVEL)
    }

    /// Adds `vector` (normalised here) and returns its node id. A vector of
    /// another length is padded or cut to the index's dimension.
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        let id = self.deleted.len() as u32;
        let mut v = normalised(vector);
        v.resize(self.dim, 0.0);
        self.vectors.extend_from_slice(&v);
        self.layer0.resize(self.layer0.len() + M0, 0);
        self.layer0_len.push(0);
        self.deleted.push(false);
        let level = self.random_level();
        self.upper.push(vec![Vec::new(); level]);

        let Some(mut ep) = self.entry else {
            self.entry = Some(id);
            self.top_level = level;
            return id;
        };
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            let mut eps = vec![Near {
                dist: self.dist(&v, ep),
                id: ep,
            }];
            for l in (level + 1..=self.top_level).rev() {
                ep = self.greedy(&v, ep, l);
                eps = vec![Near {
                    dist: self.dist(&v, ep),
                    id: ep,
                }];
            }
            for l in (0..=level.min(self.top_level)).rev() {
                visited.reset(self.len());
                let found =
                    self.search_layer(&v, &eps, EF_CONSTRUCTION, l, &mut visited, &mut |_| true);
                let max = if l == 0 { M0 } else { M };
                let chosen = self.select(&found, max);
                let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
                self.set_neighbours(id, l, &ids);
                for c in chosen {
                    self.link(c.id, id, c.dist, l, max);
                }
                eps = found;
            }
        });
        if level > self.top_level {
            self.top_level = level;
            self.entry = Some(id);
        }
        id
    }

    /// Adds `new` (at distance `dist` from `node`) to `node`'s neighbours
    /// on `level`. A full list keeps its closest: `new` replaces the
    /// farthest neighbour if it is nearer. (Re-running the selection
    /// heuristic here, as hnswlib does, cost two thirds of insert time for
    /// no measurable recall on our tests.)
    fn link(&mut self, node: u32, new: u32, dist: f32, level: usize, max: usize) {
        let current = self.neighbours(node, level);
        if current.len() < max {
            let mut list = current.to_vec();
            list.push(new);
            self.set_neighbours(node, level, &list);
            return;
        }
        let base = self.vector(node);
        let (far_at, far) = current
            .iter()
            .enumerate()
            .map(|(i, &id)| (i, 1.0 - dot(base, self.vector(id))))
            .fold((0, f32::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
        if dist < far {
            let mut list = current.to_vec();
            list[far_at] = new;
            self.set_neighbours(node, level, &list);
        }
    }

    /// The neighbour-selection heuristic (Malkov & Yashunin, algorithm 4,
    /// keeping pruned candidates to fill up): prefer candidates closer to
    /// the base than to any already chosen, so links spread out.
    fn select(&self, sorted: &[Near], max: usize) -> Vec<Near> {
        let mut chosen: Vec<Near> = Vec::with_capacity(max);
        let mut pruned: Vec<Near> = Vec::new();
        for &c in sorted {
            if chosen.len() >= max {
                break;
            }
            let cv = self.vector(c.id);
            let diverse = chosen
                .iter()
                .all(|s| 1.0 - dot(cv, self.vector(s.id)) > c.dist);
            if diverse {
                chosen.push(c);
            } else {
                pruned.push(c);
            }
        }
        for p in pruned {
            if chosen.len() >= max {
                break;
            }
            chosen.push(p);
        }
        chosen
    }

    /// Greedy descent on one upper layer.
    fn greedy(&self, q: &[f32], mut ep: u32, level: usize) -> u32 {
        let mut best = self.dist(q, ep);
        loop {
            let mut moved = false;
            for &n in self.neighbours(ep, level) {
                let d = self.dist(q, n);
                if d < best {
                    best = d;
                    ep = n;
                    moved = true;
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// The beam search of one layer. Returns up to `ef` admitted nodes,
    /// nearest first. Nodes that are removed or not admitted are walked
    /// through but never returned, and the walk goes on until `ef` admitted
    /// nodes are found or the graph is exhausted, so a filter never
    /// shortens the answer while admitted nodes remain.
    fn search_layer(
        &self,
        q: &[f32],
        eps: &[Near],
        ef: usize,
        level: usize,
        visited: &mut Visited,
        admit: &mut dyn FnMut(u32) -> bool,
    ) -> Vec<Near> {
        let mut candidates: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::new();
        let mut results: BinaryHeap<Near> = BinaryHeap::new();
        let ok =
            |id: u32, admit: &mut dyn FnMut(u32) -> bool| !self.deleted[id as usize] && admit(id);
        for &ep in eps {
            if visited.insert(ep.id) {
                candidates.push(std::cmp::Reverse(ep));
                if ok(ep.id, admit) {
                    results.push(ep);
                }
            }
        }
        while let Some(std::cmp::Reverse(c)) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.dist > w.dist) {
                break;
            }
            for &n in self.neighbours(c.id, level) {
                if !visited.insert(n) {
                    continue;
                }
                let d = self.dist(q, n);
                let full = results.len() >= ef;
                if !full || results.peek().is_some_and(|w| d < w.dist) {
                    let near = Near { dist: d, id: n };
                    candidates.push(std::cmp::Reverse(near));
                    if ok(n, admit) {
                        results.push(near);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out = results.into_vec();
        out.sort_unstable();
        out
    }

    /// The `k` nodes most similar to `query` that are not removed and that
    /// `admit` accepts, most similar first, with their cosine similarity.
    /// `ef` (raised to at least `k`) trades speed for recall; 64 is a good
    /// start.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        mut admit: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Some(mut ep) = self.entry else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let mut q = normalised(query);
        q.resize(self.dim, 0.0);
        for l in (1..=self.top_level).rev() {
            ep = self.greedy(&q, ep, l);
        }
        let eps = [Near {
            dist: self.dist(&q, ep),
            id: ep,
        }];
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.reset(self.len());
            self.search_layer(&q, &eps, ef.max(k), 0, &mut visited, &mut admit)
        });
        found
            .into_iter()
            .take(k)
            .map(|n| (n.id, 1.0 - n.dist))
            .collect()
    }

    /// Tombstones node `id`: it still routes searches but is never returned.
    pub fn remove(&mut self, id: u32) {
        if let Some(d) = self.deleted.get_mut(id as usize)
            && !*d
        {
            *d = true;
            self.deleted_count += 1;
        }
    }
}

/// Why [`Hnsw::from_links`] refused a saved graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the saved HNSW graph cannot be used: {0}; rebuild the index from the vectors")]
pub struct UnreadableLinks(String);

/// The first bytes of [`Hnsw::save_links`]'s format, version 1.
const LINKS_MAGIC: &[u8; 8] = b"LFHNSW1\0";

/// Reads little-endian fields off a byte slice, failing instead of
/// panicking when it runs out.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], UnreadableLinks> {
        if self.bytes.len() < n {
            return Err(UnreadableLinks("it ends early".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, UnreadableLinks> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, UnreadableLinks> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, UnreadableLinks> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

impl Hnsw {
    /// The graph without its vectors, as bytes: what a store keeps beside
    /// the vectors so that a process can reopen a large index with
    /// [`from_links`](Self::from_links) instead of re-inserting every
    /// vector (the inserts are what building costs). About 130 bytes per
    /// node.
    ///
    /// ```
    /// use loomflow_core::memory::Hnsw;
    /// let vectors = [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]];
    /// let mut index = Hnsw::new(2);
    /// for v in &vectors {
    ///     index.insert(v);
    /// }
    /// let links = index.save_links();
    /// let again = Hnsw::from_links(&links, vectors.concat()).unwrap();
    /// assert_eq!(again.search(&[0.6, 0.8], 1, 16, |_| true), index.search(&[0.6, 0.8], 1, 16, |_| true));
    /// ```
    pub fn save_links(&self) -> Vec<u8> {
        let n = self.len();
        let mut out = Vec::with_capacity(32 + n * (2 + 4 * M0 / 2));
        out.extend_from_slice(LINKS_MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&self.entry.unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&(self.top_level as u32).to_le_bytes());
        out.extend_from_slice(&self.rng.to_le_bytes());
        out.extend(self.deleted.iter().map(|&d| u8::from(d)));
        for id in 0..n as u32 {
            let list = self.neighbours(id, 0);
            out.push(list.len() as u8);
            out.extend(list.iter().flat_map(|x| x.to_le_bytes()));
            let upper = &self.upper[id as usize];
            out.push(upper.len() as u8);
            for list in upper {
                out.push(list.len() as u8);
                out.extend(list.iter().flat_map(|x| x.to_le_bytes()));
            }
        }
        out
    }

    /// The index saved by [`save_links`](Self::save_links), over
    /// `vectors`: every node's vector, back to back in node order
    /// (normalised here). Checks everything it reads, so a damaged or
    /// foreign blob is an error, never a panic or a graph that could panic
    /// later.
    pub fn from_links(links: &[u8], mut vectors: Vec<f32>) -> Result<Self, UnreadableLinks> {
        let bad = |what: String| Err(UnreadableLinks(what));
        let mut r = Reader { bytes: links };
        if r.take(8)? != LINKS_MAGIC {
            return bad("it does not start with the format's magic bytes".into());
        }
        let dim = r.u32()? as usize;
        let n = r.u32()? as usize;
        let entry = r.u32()?;
        let top_level = r.u32()? as usize;
        let rng = r.u64()?;
        if dim == 0 || vectors.len() != n.saturating_mul(dim) {
            return bad(format!(
                "it holds {n} nodes of {dim} dimensions, and {} floats were given",
                vectors.len()
            ));
        }
        let deleted: Vec<bool> = r.take(n)?.iter().map(|&b| b != 0).collect();
        let mut layer0 = vec![0u32; n * M0];
        let mut layer0_len = Vec::with_capacity(n);
        let mut upper = Vec::with_capacity(n);
        for id in 0..n {
            let len = r.u8()? as usize;
            if len > M0 {
                return bad(format!("node {id} has {len} links on layer 0"));
            }
            for slot in &mut layer0[id * M0..id * M0 + len] {
                *slot = r.u32()?;
            }
            layer0_len.push(len as u8);
            let levels = r.u8()? as usize;
            if levels > MAX_LEVEL {
                return bad(format!("node {id} is on {levels} upper layers"));
            }
            let mut lists = Vec::with_capacity(levels);
            for _ in 0..levels {
                let len = r.u8()? as usize;
                if len > M0 {
                    return bad(format!("node {id} has {len} links on an upper layer"));
                }
                let mut list = Vec::with_capacity(len);
                for _ in 0..len {
                    list.push(r.u32()?);
                }
                lists.push(list);
            }
            upper.push(lists);
        }
        if !r.bytes.is_empty() {
            return bad(format!("{} bytes follow the graph", r.bytes.len()));
        }
        // Every link names a node, and a node linked on layer l is on it.
        for id in 0..n {
            let zero = &layer0[id * M0..id * M0 + layer0_len[id] as usize];
            if zero.iter().any(|&x| x as usize >= n) {
                return bad(format!("node {id} links to a node that does not exist"));
            }
            for (l, list) in upper[id].iter().enumerate() {
                if list.iter().any(|&x| {
                    upper
                        .get(x as usize)
                        .is_none_or(|u: &Vec<Vec<u32>>| u.len() <= l)
                }) {
                    return bad(format!(
                        "node {id} links on layer {} to a node not on it",
                        l + 1
                    ));
                }
            }
        }
        let entry = match (n, entry) {
            (0, u32::MAX) => None,
            (_, e) if (e as usize) < n && upper[e as usize].len() == top_level => Some(e),
            _ => return bad("its entry point is not a node on the top layer".into()),
        };
        for v in vectors.chunks_exact_mut(dim) {
            let norm = dot(v, v).sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(Self {
            dim,
            vectors,
            layer0,
            layer0_len,
            upper,
            deleted_count: deleted.iter().filter(|&&d| d).count(),
            deleted,
            entry,
            top_level,
            rng,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
    }

    fn exact(data: &[Vec<f32>], q: &[f32], k: usize, admit: impl Fn(u32) -> bool) -> Vec<u32> {
        let q = normalised(q);
        let mut all: Vec<(u32, f32)> = data
            .iter()
            .enumerate()
            .filter(|(i, _)| admit(*i as u32))
            .map(|(i, v)| (i as u32, dot(&q, &normalised(v))))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.into_iter().take(k).map(|x| x.0).collect()
    }

    #[test]
    fn recall_against_exact_search_is_high() {
        let data = random_vectors(1500, 24, 7);
        let mut index = Hnsw::new(24);
        for v in &data {
            index.insert(v);
        }
        let queries = random_vectors(50, 24, 99);
        let mut hit = 0;
        for q in &queries {
            let want = exact(&data, q, 10, |_| true);
            let got: Vec<u32> = index
                .search(q, 10, 64, |_| true)
                .iter()
                .map(|h| h.0)
                .collect();
            hit += want.iter().filter(|w| got.contains(w)).count();
        }
        let recall = hit as f32 / 500.0;
        assert!(recall > 0.9, "recall@10 = {recall}");
    }

    #[test]
    fn filters_and_tombstones_never_shorten_the_answer() {
        let data = random_vectors(1200, 16, 3);
        let mut index = Hnsw::new(16);
        for v in &data {
            index.insert(v);
        }
        for id in 0..600 {
            index.remove(id);
        }
        // One node in fifty is admitted: the walk must still find k.
        let admit = |id: u32| id % 50 == 7;
        let got = index.search(&data[0], 10, 16, admit);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(id, _)| admit(*id) && *id >= 600));
        let want = exact(&data, &data[0], 10, |id| admit(id) && id >= 600);
        assert_eq!(got.iter().map(|h| h.0).collect::<Vec<_>>(), want);
        assert_eq!(index.removed(), 600);
    }

    #[test]
    fn saved_links_reopen_the_same_index_and_damage_is_refused() {
        let data = random_vectors(800, 12, 5);
        let mut index = Hnsw::new(12);
        for v in &data {
            index.insert(v);
        }
        index.remove(3);
        let links = index.save_links();
        let mut again = Hnsw::from_links(&links, data.concat()).unwrap();
        assert_eq!(again.removed(), 1);
        for q in random_vectors(20, 12, 17) {
            assert_eq!(
                again.search(&q, 10, 64, |_| true),
                index.search(&q, 10, 64, |_| true)
            );
        }
        // Inserting after a reopen continues the same graph.
        let extra = random_vectors(1, 12, 23).remove(0);
        assert_eq!(again.insert(&extra), index.insert(&extra));
        assert_eq!(again.save_links(), index.save_links());

        assert!(
            Hnsw::from_links(&links, data[1..].concat()).is_err(),
            "a vector short"
        );
        assert!(Hnsw::from_links(&links[..links.len() - 1], data.concat()).is_err());
        assert!(Hnsw::from_links(b"something else", data.concat()).is_err());
        // Any single damaged byte is refused or yields a usable graph.
        for at in (8..links.len()).step_by(101) {
            let mut bad = links.clone();
            bad[at] ^= 0xA5;
            if let Ok(graph) = Hnsw::from_links(&bad, data.concat()) {
                let _ = graph.search(&data[0], 5, 32, |_| true);
            }
        }
        let empty = Hnsw::new(4);
        let reopened = Hnsw::from_links(&empty.save_links(), Vec::new()).unwrap();
        assert!(reopened.is_empty());
    }
}
