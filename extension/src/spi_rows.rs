//! Reading an SPI result once per row.
//!
//! pgrx's `SpiHeapTupleData::get` crosses into Postgres once per cell (and `SPI_getbinval`
//! re-walks variable-width rows from their first column each time). A catalog read of 30,000
//! columns is ~200,000 cells, which made that overhead larger than the query itself. Here each
//! row is deformed once with `heap_deform_tuple` and values are read straight from the datums;
//! the result is freed as soon as it has been consumed.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::varlena;

use crate::error::DriftError;

/// One deformed row. Column types are the caller's declaration (`for_each`'s `types`), checked
/// against the result descriptor before the first row is read.
pub struct Row<'a> {
    values: &'a [pg_sys::Datum],
    nulls: &'a [bool],
}

impl Row<'_> {
    pub fn int4(&self, i: usize) -> Option<i32> {
        (!self.nulls[i]).then(|| self.values[i].value() as i32)
    }

    pub fn int8(&self, i: usize) -> Option<i64> {
        (!self.nulls[i]).then(|| self.values[i].value() as i64)
    }

    pub fn text(&self, i: usize) -> Option<String> {
        // SAFETY: the column is `text` (checked in `for_each`) and the datum lives as long as
        // the tuple table.
        (!self.nulls[i]).then(|| unsafe { text_datum(self.values[i]) })
    }

    /// A `text[]` column, deconstructed once (not element by element through pgrx).
    pub fn text_array(&self, i: usize) -> Vec<Option<String>> {
        // SAFETY: the column is `text[]` (checked in `for_each`); elements are text datums.
        unsafe {
            self.array(i, pg_sys::TEXTOID, -1, false, pg_sys::TYPALIGN_INT as _)
                .map(|d| d.map(|d| text_datum(d)))
                .collect()
        }
    }

    /// An `integer[]` column.
    pub fn int4_array(&self, i: usize) -> Vec<Option<i32>> {
        // SAFETY: the column is `integer[]` (checked in `for_each`); elements are by value.
        unsafe {
            self.array(i, pg_sys::INT4OID, 4, true, pg_sys::TYPALIGN_INT as _)
                .map(|d| d.map(|d| d.value() as i32))
                .collect()
        }
    }

    /// A `bigint[]` column.
    pub fn int8_array(&self, i: usize) -> Vec<Option<i64>> {
        // SAFETY: the column is `bigint[]` (checked in `for_each`); elements are by value.
        unsafe {
            self.array(i, pg_sys::INT8OID, 8, true, pg_sys::TYPALIGN_DOUBLE as _)
                .map(|d| d.map(|d| d.value() as i64))
                .collect()
        }
    }

    /// A `boolean[]` column.
    pub fn bool(&self, i: usize) -> Option<bool> {
        (!self.nulls[i]).then(|| self.values[i].value() != 0)
    }

    pub fn bool_array(&self, i: usize) -> Vec<Option<bool>> {
        // SAFETY: the column is `boolean[]` (checked in `for_each`); elements are by value.
        unsafe {
            self.array(i, pg_sys::BOOLOID, 1, true, pg_sys::TYPALIGN_CHAR as _)
                .map(|d| d.map(|d| d.value() != 0))
                .collect()
        }
    }

    unsafe fn array(
        &self,
        i: usize,
        element: pg_sys::Oid,
        len: i16,
        byval: bool,
        align: std::ffi::c_char,
    ) -> impl Iterator<Item = Option<pg_sys::Datum>> {
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut count = 0;
        if !self.nulls[i] {
            let array =
                pg_sys::pg_detoast_datum(self.values[i].cast_mut_ptr()) as *mut pg_sys::ArrayType;
            pg_sys::deconstruct_array(
                array,
                element,
                len.into(),
                byval,
                align,
                &mut elems,
                &mut nulls,
                &mut count,
            );
        }
        (0..count as usize).map(move |k| (!*nulls.add(k)).then(|| *elems.add(k)))
    }
}

/// A text datum as a Rust string. Compressed or out-of-line values (never produced by our
/// queries, but possible) are detoasted into the current memory context first.
unsafe fn text_datum(datum: pg_sys::Datum) -> String {
    let mut ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
    if varlena::varatt_is_1b_e(ptr) || varlena::varatt_is_4b_c(ptr) {
        ptr = pg_sys::pg_detoast_datum_packed(ptr);
    }
    String::from_utf8_lossy(varlena::varlena_to_byte_slice(ptr)).into_owned()
}

/// Column types a result may have, as `Row`'s accessors read them.
pub mod ty {
    use pgrx::pg_sys::{self, Oid};
    pub const INT4: Oid = pg_sys::INT4OID;
    pub const INT8: Oid = pg_sys::INT8OID;
    pub const TEXT: Oid = pg_sys::TEXTOID;
    pub const BOOL: Oid = pg_sys::BOOLOID;
    pub const TEXT_ARRAY: Oid = pg_sys::TEXTARRAYOID;
    pub const BOOL_ARRAY: Oid = pg_sys::BOOLARRAYOID;
    pub const INT4_ARRAY: Oid = pg_sys::INT4ARRAYOID;
    pub const INT8_ARRAY: Oid = pg_sys::INT8ARRAYOID;
}

/// Runs `sql` and calls `each` with every row. `types` are the result's column types, one per
/// column in order: the result descriptor must match them exactly before any row is read, so
/// each accessor (`Row::text(i)` on a `text` column, ...) reads the type it expects.
pub fn for_each(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    types: &[pg_sys::Oid],
    mut each: impl FnMut(&Row<'_>) -> Result<(), DriftError>,
) -> Result<(), DriftError> {
    // Only the row count is taken from pgrx's wrapper; rows are read from SPI_tuptable below.
    let count = client.select(sql, None, args)?.len();
    // SAFETY: SPI_tuptable is the result of the select above (no SPI call in between); rows are
    // read in bounds of SPI_processed/numvals and the table is freed once, after the last use.
    unsafe {
        let tuptable = pg_sys::SPI_tuptable;
        if tuptable.is_null() {
            return Ok(());
        }
        let desc = (*tuptable).tupdesc;
        let natts = (*desc).natts as usize;
        let attrs = (*desc).attrs.as_slice(natts);
        let matches = attrs.len() == types.len()
            && attrs.iter().zip(types).all(|(attr, t)| attr.atttypid == *t);
        if !matches {
            pg_sys::SPI_freetuptable(tuptable);
            return Err(DriftError::Internal(
                "a result's column types are not the ones its reader expects",
            ));
        }
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![true; natts];
        let mut result = Ok(());
        for i in 0..count {
            let tuple = *(*tuptable).vals.add(i);
            pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            result = each(&Row {
                values: &values,
                nulls: &nulls,
            });
            if result.is_err() {
                break;
            }
        }
        pg_sys::SPI_freetuptable(tuptable);
        result
    }
}
