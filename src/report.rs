//! The --capabilities report on stdout: a table for people, JSON for scripts.

use std::io::Write;

use crate::exit::{io_reason, Error, Exit, Result};
use crate::request::ReportFormat;
use crate::transport::SessionReport;

pub fn print_capabilities(reports: &[SessionReport], format: ReportFormat) -> Result<()> {
    let text = match format {
        ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(reports)
                .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?;
            json.push('\n');
            json
        }
        ReportFormat::Table => reports.iter().map(table).collect::<Vec<_>>().join("\n"),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::IoErr,
            format!("cannot write the report: {}", io_reason(&err)),
        )),
        _ => Ok(()),
    }
}

fn table(report: &SessionReport) -> String {
    let mut out = format!("server: {}\n", report.server);
    if let Some((_, first)) = report.capabilities.first() {
        out.push_str(&format!("name: {}\n", first.greeting_name));
    }
    let columns: Vec<&str> = report
        .capabilities
        .iter()
        .map(|(label, _)| label.as_str())
        .collect();
    let rows: Vec<Vec<(String, String)>> = report
        .capabilities
        .iter()
        .map(|(_, caps)| caps.table())
        .collect();
    if let Some(first) = rows.first() {
        out.push_str(&format!("{:<22}", "extension"));
        for column in &columns {
            out.push_str(&format!("{column:<26}"));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for (index, (name, _)) in first.iter().enumerate() {
            out.push_str(&format!("{name:<22}"));
            for row in &rows {
                out.push_str(&format!("{:<26}", row[index].1));
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
    }
    if let Some(cert) = &report.certificate {
        for line in cert.lines() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
