//! `nsswitch.conf`: which services glibc asks for each database. glibc reads the file named in
//! libc; without it, it uses built-in defaults.

/// The services named for `database` (`hosts: files dns` gives `files`, `dns`), action items
/// (`[NOTFOUND=return]`) left out. None when the file has no line for it.
pub fn services<'a>(conf: &'a str, database: &str) -> Option<Vec<&'a str>> {
    conf.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| l.split_once(':'))
        .find(|(db, _)| db.trim() == database)
        .map(|(_, rest)| {
            let mut out = Vec::new();
            let mut in_action = false;
            for word in rest.split_whitespace() {
                if word.starts_with('[') {
                    in_action = true;
                }
                if !in_action {
                    out.push(word);
                }
                if word.ends_with(']') {
                    in_action = false;
                }
            }
            out
        })
}

/// glibc's services for a database when `nsswitch.conf` does not name it (glibc ≥ 2.34:
/// `dns files` for hosts, `files` for the others).
pub fn default_services(database: &str) -> Vec<&'static str> {
    match database {
        "hosts" => vec!["dns", "files"],
        _ => vec!["files"],
    }
}

/// The file glibc dlopens for a service: `libnss_<service>.so.2`.
pub fn module_name(service: &str) -> String {
    format!("libnss_{service}.so.2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_skip_actions_and_comments() {
        let conf = "# c\npasswd:  files systemd # x\nhosts: files [NOTFOUND=return] mdns4 [ !UNAVAIL=return ] dns\n";
        assert_eq!(services(conf, "passwd"), Some(vec!["files", "systemd"]));
        assert_eq!(services(conf, "hosts"), Some(vec!["files", "mdns4", "dns"]));
        assert_eq!(services(conf, "group"), None);
    }
}
