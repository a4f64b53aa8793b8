//! virsh's tables (`vsh-table.c` layout): a header row, a line of dashes,
//! then rows; every cell is preceded by one space, every cell but the last
//! is padded to its column's width and followed by two spaces.

/// A table being filled.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Display width of a cell: characters, which is what a terminal shows
/// for the names and paths virsh lists.
fn width(s: &str) -> usize {
    s.chars().count()
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let mut r: Vec<String> = cells
            .iter()
            .take(self.header.len())
            .map(|c| c.as_ref().to_string())
            .collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
    }

    /// Column widths; the titles count only when they are printed (with
    /// `-q` virsh sizes the columns by the rows alone).
    fn widths(&self, header: bool) -> Vec<usize> {
        let mut w: Vec<usize> = if header {
            self.header.iter().map(|h| width(h)).collect()
        } else {
            vec![0; self.header.len()]
        };
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(width(c));
            }
        }
        w
    }

    fn render_row(out: &mut String, cells: &[String], widths: &[usize]) {
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            out.push(' ');
            out.push_str(c);
            if i < last {
                out.extend(std::iter::repeat_n(' ', widths[i] - width(c) + 2));
            }
        }
        out.push('\n');
    }

    /// The table as virsh prints it; `header` false (virsh `-q`) leaves
    /// out the titles and the dashes.
    pub fn render(&self, header: bool) -> String {
        let widths = self.widths(header);
        let mut out = String::new();
        if header {
            Self::render_row(&mut out, &self.header, &widths);
            let dashes = widths.iter().sum::<usize>() + 3 * widths.len();
            out.extend(std::iter::repeat_n('-', dashes));
            out.push('\n');
        }
        for r in &self.rows {
            Self::render_row(&mut out, r, &widths);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_all_layout_from_virsh() {
        let mut t = Table::new(&["Id", "Name", "State"]);
        t.row(&["3", "demo", "running"]);
        t.row(&["-", "demo-pc", "shut off"]);
        assert_eq!(
            t.render(true),
            " Id   Name      State\n\
             --------------------------\n \
             3    demo      running\n \
             -    demo-pc   shut off\n"
        );
    }

    #[test]
    fn empty_last_column_keeps_padding_of_the_others() {
        let mut t = Table::new(&["Id", "Name", "State", "Title"]);
        t.row(&["3", "demo", "running", ""]);
        t.row(&["-", "demo-pc", "shut off", ""]);
        let s = t.render(true);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], " Id   Name      State      Title");
        assert_eq!(lines[1], "-".repeat(34));
        assert_eq!(lines[2], " 3    demo      running    ");
        assert_eq!(lines[3], " -    demo-pc   shut off   ");
    }

    #[test]
    fn empty_table_and_quiet() {
        let t = Table::new(&["Id", "Name", "State"]);
        assert_eq!(t.render(true), " Id   Name   State\n--------------------\n");
        let mut t = Table::new(&["Target", "Source"]);
        t.row(&["vda", "/guest/diskimage1"]);
        t.row(&["hdc", "-"]);
        assert_eq!(t.render(false), " vda   /guest/diskimage1\n hdc   -\n");
    }
}
