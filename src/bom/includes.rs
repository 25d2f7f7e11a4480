//! Following `includes`: where an included bom is found, which boms are the
//! same one, include cycles, and the order in which boms are processed.
//!
//! The original walked the include tree breadth-first with a pop counter of
//! 100, which both missed the point of a cycle and rejected large legal DAGs.
//! We build the include graph once (each bom parsed once, identified by its
//! canonical path), reject cycles by name, then compute the same order the
//! original gave, level by level, without unfolding the tree.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::parse::{Vars, parse};
use super::templates::{self, Template};
use super::{Bom, LoadedBoms, Located, Warning};
use crate::error::{Error, Status};

/// What makes two bom paths the same bom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BomId {
    File(PathBuf),
    Embedded(&'static str),
}

/// Where a bom's text comes from.
enum Source {
    File(PathBuf),
    Embedded(Template),
}

/// One bom and the boms it includes (indexes into the graph, with the
/// location of each include entry).
struct Node {
    bom: Bom,
    embedded: bool,
    edges: Vec<(usize, Located<String>)>,
}

/// The boms read so far, each once.
#[derive(Default)]
struct Graph {
    nodes: Vec<Node>,
    ids: HashMap<BomId, usize>,
    warnings: Vec<Warning>,
}

impl Graph {
    /// The index of the bom at `source`, read and parsed the first time it is seen.
    fn node(&mut self, source: &Source, vars: Vars) -> Result<usize, Error> {
        let id = identify(source)?;
        if let Some(&index) = self.ids.get(&id) {
            return Ok(index);
        }
        let (bom, warnings) = read(source, vars)?;
        self.warnings.extend(warnings);
        self.ids.insert(id, self.nodes.len());
        self.nodes.push(Node {
            bom,
            embedded: matches!(source, Source::Embedded(_)),
            edges: Vec::new(),
        });
        Ok(self.nodes.len() - 1)
    }
}

/// Loads the bom at `top` and every bom it includes, directly or not.
///
/// Returns them in processing order (SPEC A§2): breadth-first from `top`,
/// keeping the last occurrence of a bom reached several times. `include_dirs`
/// are searched after the including bom's own directory; the embedded
/// templates are the last resort. `vars` looks variables up.
pub fn load(
    top: &Path,
    include_dirs: &[PathBuf],
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedBoms, Error> {
    let mut graph = Graph::default();
    graph.node(&Source::File(top.to_path_buf()), vars)?;
    let mut next = 0;
    while next < graph.nodes.len() {
        for include in graph.nodes[next].bom.includes.clone() {
            let source = find(&graph.nodes[next], &include, include_dirs)?;
            let index = graph.node(&source, vars)?;
            graph.nodes[next].edges.push((index, include));
        }
        next += 1;
    }
    let Graph {
        nodes, warnings, ..
    } = graph;
    reject_cycles(&nodes)?;
    let order = processing_order(&nodes);
    let mut slots: Vec<Option<Bom>> = nodes.into_iter().map(|n| Some(n.bom)).collect();
    let boms = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(LoadedBoms { boms, warnings })
}

/// The identity of a source: its canonical path, or its template name.
fn identify(source: &Source) -> Result<BomId, Error> {
    match source {
        Source::Embedded(t) => Ok(BomId::Embedded(t.name)),
        Source::File(path) => fs::canonicalize(path)
            .map(BomId::File)
            .map_err(|e| unreadable(path, &e)),
    }
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        Status::NotFound,
        format!("{}: cannot read bom file: {e}", path.display()),
    )
}

/// Reads and parses one bom.
fn read(source: &Source, vars: Vars) -> Result<(Bom, Vec<Warning>), Error> {
    match source {
        Source::File(path) => {
            let bytes = fs::read(path).map_err(|e| unreadable(path, &e))?;
            parse(path, &bytes, vars)
        }
        Source::Embedded(t) => parse(&t.path(), t.text.as_bytes(), vars),
    }
}

/// Finds include `include` of `from` (SPEC A§2): the including bom's own
/// directory, then each include dir in order, then the embedded templates.
fn find(from: &Node, include: &Located<String>, include_dirs: &[PathBuf]) -> Result<Source, Error> {
    let name = include.value.as_str();
    let mut candidates = Vec::new();
    if !from.embedded {
        let dir = from.bom.path.parent().unwrap_or(Path::new(""));
        candidates.push(dir.join(name));
    }
    candidates.extend(include_dirs.iter().map(|d| d.join(name)));
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(Source::File(found.clone()));
    }
    if let Some(t) = templates::find(name) {
        return Ok(Source::Embedded(t));
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(Error::at(
        Status::NotFound,
        &include.loc,
        format!(
            "cannot find included bom {name} (looked in: {})",
            looked.join(", ")
        ),
    ))
}

/// Fails with the chain of boms if the include graph has a cycle.
fn reject_cycles(nodes: &[Node]) -> Result<(), Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    // Iterative depth-first search: (node, next edge to follow).
    let mut path: Vec<(usize, usize)> = vec![(0, 0)];
    marks[0] = Mark::OnPath;
    while let Some(top) = path.last_mut() {
        let (node, edge) = *top;
        let Some((to, include)) = nodes[node].edges.get(edge) else {
            marks[node] = Mark::Done;
            path.pop();
            continue;
        };
        top.1 += 1;
        match marks[*to] {
            Mark::Done => {}
            Mark::New => {
                marks[*to] = Mark::OnPath;
                path.push((*to, 0));
            }
            Mark::OnPath => return Err(cycle_error(nodes, &path, *to, include)),
        }
    }
    Ok(())
}

fn cycle_error(
    nodes: &[Node],
    path: &[(usize, usize)],
    back_to: usize,
    include: &Located<String>,
) -> Error {
    let start = path.iter().position(|(n, _)| *n == back_to).unwrap_or(0);
    let chain: Vec<String> = path[start..]
        .iter()
        .map(|(n, _)| *n)
        .chain([back_to])
        .map(|n| nodes[n].bom.path.display().to_string())
        .collect();
    Error::at(
        Status::InvalidBom,
        &include.loc,
        format!("include cycle: {}", chain.join(" → ")),
    )
}

/// The original's order: the breadth-first list of every include visit,
/// keeping each bom's last occurrence. A bom's last occurrence lies in the
/// deepest level that holds it, so each level is computed deduplicated
/// (keeping last) from the previous one; the graph must be acyclic.
fn processing_order(nodes: &[Node]) -> Vec<usize> {
    let mut levels: Vec<Vec<usize>> = vec![vec![0]];
    for _ in 0..nodes.len() {
        let Some(last) = levels.last() else { break };
        let next = keep_last(
            last.iter()
                .flat_map(|&n| nodes[n].edges.iter().map(|(to, _)| *to)),
        );
        if next.is_empty() {
            break;
        }
        levels.push(next);
    }
    let mut deepest = vec![0; nodes.len()];
    for (depth, level) in levels.iter().enumerate() {
        for &n in level {
            deepest[n] = depth;
        }
    }
    let mut order = Vec::new();
    for (depth, level) in levels.iter().enumerate() {
        order.extend(level.iter().copied().filter(|&n| deepest[n] == depth));
    }
    order
}

/// The items in order, each kept only at its last occurrence.
fn keep_last(items: impl Iterator<Item = usize>) -> Vec<usize> {
    let all: Vec<usize> = items.collect();
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<usize> = all.into_iter().rev().filter(|n| seen.insert(*n)).collect();
    kept.reverse();
    kept
}
