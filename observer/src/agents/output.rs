//! Table and JSON-lines output of verdict rows (`-o table|json`, as
//! `gatewatch flows`).
use std::io::{self, Write};

use crate::agents::verdict::Row;

const HEADERS: [&str; 8] = [
    "PROJECT",
    "AGENT",
    "KIND",
    "MODEL",
    "CONNECTION",
    "CATEGORY",
    "ROUTE",
    "REASON",
];

fn cells(r: &Row) -> [String; 8] {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    [
        r.project.clone(),
        r.agent.clone(),
        dash(&r.kind),
        dash(&r.model),
        dash(&r.connection),
        dash(&r.category),
        r.route.as_str().to_owned(),
        r.reason.clone(),
    ]
}

pub fn write_table(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    let all: Vec<[String; 8]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &all {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cols: &[&str]| -> io::Result<()> {
        let last = cols.len() - 1;
        for (i, c) in cols.iter().enumerate() {
            if i == last {
                writeln!(out, "{c}")?;
            } else {
                write!(out, "{c:<w$} ", w = widths[i])?;
            }
        }
        Ok(())
    };
    line(out, &HEADERS)?;
    for row in &all {
        line(out, &row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

pub fn write_json(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    for r in rows {
        serde_json::to_writer(&mut *out, r)?;
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::verdict::{Api, Route};

    fn row() -> Row {
        Row {
            project: "h/p".into(),
            api: Api::Agents,
            agent: "helper".into(),
            agent_id: None,
            version: Some("2".into()),
            kind: Some("prompt".into()),
            model: Some("gpt-4.1-mini".into()),
            connection: None,
            category: None,
            target: None,
            route: Route::Direct,
            reason: "own deployment".into(),
        }
    }

    #[test]
    fn table_aligns_columns_and_dashes_empty_cells() {
        let mut buf = Vec::new();
        write_table(&mut buf, &[row()]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "PROJECT AGENT  KIND   MODEL        CONNECTION CATEGORY ROUTE  REASON\n\
             h/p     helper prompt gpt-4.1-mini -          -        direct own deployment\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut buf = Vec::new();
        write_json(&mut buf, &[row(), row()]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["route"], "direct");
        assert_eq!(v["api"], "agents");
        assert_eq!(v["connection"], serde_json::Value::Null);
    }
}
