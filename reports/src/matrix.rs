//! The scenarios × clients grid every human-facing writer draws. Rows and columns come from
//! the report's declared scenarios and clients, plus any id a cell names that was not
//! declared (so a malformed report still shows every cell instead of hiding some).

use std::collections::HashMap;

use crate::{Cell, RunReport};

pub(crate) struct Row<'a> {
    pub id: &'a str,
    /// Empty when the scenario was not declared.
    pub title: &'a str,
}

pub(crate) struct Column<'a> {
    pub id: &'a str,
    /// Why the client could not run at all, if it could not.
    pub unavailable: Option<&'a str>,
}

pub(crate) struct Matrix<'a> {
    pub rows: Vec<Row<'a>>,
    pub columns: Vec<Column<'a>>,
    cells: HashMap<(&'a str, &'a str), &'a Cell>,
}

impl<'a> Matrix<'a> {
    pub fn new(report: &'a RunReport) -> Self {
        let mut rows: Vec<Row<'a>> = report
            .scenarios
            .iter()
            .map(|s| Row {
                id: &s.id,
                title: &s.title,
            })
            .collect();
        let mut columns: Vec<Column<'a>> = report
            .clients
            .iter()
            .map(|c| Column {
                id: &c.id,
                unavailable: c.unavailable.as_deref(),
            })
            .collect();
        let mut cells = HashMap::new();
        for cell in &report.cells {
            if !rows.iter().any(|r| r.id == cell.scenario) {
                rows.push(Row {
                    id: &cell.scenario,
                    title: "",
                });
            }
            if !columns.iter().any(|c| c.id == cell.client) {
                columns.push(Column {
                    id: &cell.client,
                    unavailable: None,
                });
            }
            // A duplicated cell keeps its first occurrence, like `RunReport::cell`.
            cells
                .entry((cell.scenario.as_str(), cell.client.as_str()))
                .or_insert(cell);
        }
        Self {
            rows,
            columns,
            cells,
        }
    }

    pub fn cell(&self, scenario: &str, client: &str) -> Option<&'a Cell> {
        self.cells.get(&(scenario, client)).copied()
    }

    /// The (row, column) indices of a cell, for in-page anchors.
    pub fn position(&self, scenario: &str, client: &str) -> Option<(usize, usize)> {
        let row = self.rows.iter().position(|r| r.id == scenario)?;
        let column = self.columns.iter().position(|c| c.id == client)?;
        Some((row, column))
    }

    /// The index of a client's column.
    pub fn column_index(&self, client: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.id == client)
    }

    /// Grid positions that have no cell at all: the run lost them somewhere.
    pub fn missing(&self) -> usize {
        (self.rows.len() * self.columns.len()).saturating_sub(self.cells.len())
    }
}
