//! The names tools are offered under.

use std::collections::HashMap;

/// Characters every provider accepts in a tool name (OpenAI's
/// `^[a-zA-Z0-9_-]{1,64}$` is the narrowest).
pub(crate) fn valid(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '_',
            },
        )
        .collect();
    if out.len() > 64 {
        out.truncate(64);
    }
    out
}

/// For each `(server, tool)` in order: the name it is offered under (bare
/// when no other server has a tool of that name, else `server__tool`) and
/// its qualified name (`server__tool`, which always resolves).
pub(crate) fn expose<'a>(
    tools: impl Iterator<Item = (usize, &'a str)> + Clone,
    server_name: impl Fn(usize) -> &'a str,
) -> Vec<(String, String)> {
    let mut servers_per_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (server, tool) in tools.clone() {
        let seen = servers_per_name.entry(tool).or_default();
        if !seen.contains(&server) {
            seen.push(server);
        }
    }
    tools
        .map(|(server, tool)| {
            let qualified = valid(&format!("{}__{tool}", server_name(server)));
            let bare = match servers_per_name[tool].len() {
                1 => valid(tool),
                _ => qualified.clone(),
            };
            (bare, qualified)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::expose;

    #[test]
    fn unique_names_stay_bare_and_collisions_are_qualified() {
        let tools = [(0, "echo"), (0, "add"), (1, "echo"), (1, "read.file")];
        let names = ["a", "b web"];
        let got = expose(tools.iter().copied(), |s| names[s]);
        assert_eq!(
            got,
            [
                ("a__echo".to_owned(), "a__echo".to_owned()),
                ("add".to_owned(), "a__add".to_owned()),
                ("b_web__echo".to_owned(), "b_web__echo".to_owned()),
                ("read_file".to_owned(), "b_web__read_file".to_owned()),
            ]
        );
    }
}
