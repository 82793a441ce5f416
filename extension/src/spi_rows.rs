//! Reading an SPI result once per row.
//!
//! pgrx's `SpiHeapTupleData::get` crosses into Postgres once per cell (and `SPI_getbinval`
//! re-walks variable-width rows from their first column each time). A catalog read of 30,000
//! columns is ~200,000 cells, which made that overhead larger than the query itself. Here each
//! row is deformed once (`slot_getallattrs`) and values are read straight from the datums;
//! rows are handed over one by one as the executor produces them (see `for_each`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::CString;

use pgrx::datum::DatumWithOid;
use pgrx::pg_guard;
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

    pub fn oid(&self, i: usize) -> Option<u32> {
        (!self.nulls[i]).then(|| self.values[i].value() as u32)
    }

    pub fn text(&self, i: usize) -> Option<String> {
        self.str(i).map(|s| s.into_owned())
    }

    /// A `text` (or `json`) column, borrowed from the row where it is valid UTF-8 (always, in a UTF-8
    /// database): valid while `each` runs.
    pub fn str(&self, i: usize) -> Option<Cow<'_, str>> {
        // SAFETY: the column is `text` or `json`, both text varlenas (checked in `for_each`),
        // and the datum lives as long as the row.
        (!self.nulls[i]).then(|| unsafe { text_datum(self.values[i]) })
    }

    /// A `text[]` column's elements, each borrowed as [`Row::str`] borrows.
    pub fn str_array(&self, i: usize) -> impl ExactSizeIterator<Item = Option<Cow<'_, str>>> + '_ {
        // SAFETY: the column is `text[]` (checked in `for_each`); elements are text datums
        // in memory that lives as long as the row (or the SPI call, for a detoasted copy).
        unsafe {
            self.array(i, pg_sys::TEXTOID, -1, false, pg_sys::TYPALIGN_INT as _)
                .map(|d| d.map(|d| text_datum(d)))
        }
    }

    /// An `integer[]` column's elements, read in place.
    pub fn int4_array_iter(&self, i: usize) -> impl ExactSizeIterator<Item = Option<i32>> + '_ {
        // SAFETY: the column is `integer[]` (checked in `for_each`); elements are by value.
        unsafe {
            self.array(i, pg_sys::INT4OID, 4, true, pg_sys::TYPALIGN_INT as _)
                .map(|d| d.map(|d| d.value() as i32))
        }
    }

    /// A `bigint[]` column's elements, read in place.
    pub fn int8_array_iter(&self, i: usize) -> impl Iterator<Item = Option<i64>> + '_ {
        // SAFETY: the column is `bigint[]` (checked in `for_each`); elements are by value.
        unsafe {
            self.array(i, pg_sys::INT8OID, 8, true, pg_sys::TYPALIGN_DOUBLE as _)
                .map(|d| d.map(|d| d.value() as i64))
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
    ) -> impl ExactSizeIterator<Item = Option<pg_sys::Datum>> {
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
unsafe fn text_datum<'a>(datum: pg_sys::Datum) -> Cow<'a, str> {
    let mut ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
    if varlena::varatt_is_1b_e(ptr) || varlena::varatt_is_4b_c(ptr) {
        ptr = pg_sys::pg_detoast_datum_packed(ptr);
    }
    let bytes: &'a [u8] = varlena::varlena_to_byte_slice(ptr);
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Column types a result may have, as `Row`'s accessors read them.
pub mod ty {
    use pgrx::pg_sys::{self, Oid};
    pub const INT4: Oid = pg_sys::INT4OID;
    pub const INT8: Oid = pg_sys::INT8OID;
    pub const TEXT: Oid = pg_sys::TEXTOID;
    pub const OID: Oid = pg_sys::OIDOID;
    /// Read with `Row::str` (its text form).
    pub const JSON: Oid = pg_sys::JSONOID;
    pub const BOOL: Oid = pg_sys::BOOLOID;
    pub const TEXT_ARRAY: Oid = pg_sys::TEXTARRAYOID;
    pub const BOOL_ARRAY: Oid = pg_sys::BOOLARRAYOID;
    pub const INT4_ARRAY: Oid = pg_sys::INT4ARRAYOID;
    pub const INT8_ARRAY: Oid = pg_sys::INT8ARRAYOID;
}

/// Runs `sql` and calls `each` with every row. `types` are the result's column types, one per
/// column in order: the result descriptor must match them exactly before any row is read, so
/// each accessor (`Row::text(i)` on a `text` column, ...) reads the type it expects.
///
/// Rows are not materialised in an SPI tuple table: the executor hands each one to a
/// `DestReceiver` of ours, which reads its datums in place and passes them to `each`. An error
/// from `each` stops the query and is returned.
pub fn for_each(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    types: &[pg_sys::Oid],
    each: impl FnMut(&Row<'_>) -> Result<(), DriftError>,
) -> Result<(), DriftError> {
    run(client, Plan::Once(sql), args, types, each)
}

/// [`for_each`] for a fixed statement run on every call: it is planned once per backend and
/// the plan kept (`SPI_keepplan`); Postgres's plan cache replans it when an object it uses
/// changes, or the search path does. `args` must have the same types on every call.
pub fn for_each_saved(
    client: &SpiClient<'_>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
    types: &[pg_sys::Oid],
    each: impl FnMut(&Row<'_>) -> Result<(), DriftError>,
) -> Result<(), DriftError> {
    run(client, Plan::Saved(sql), args, types, each)
}

enum Plan<'s> {
    Once(&'s str),
    Saved(&'static str),
}

thread_local! {
    /// Kept plans by statement text (address and length: the texts are static).
    static SAVED: RefCell<Vec<(usize, usize, SendPlan)>> = const { RefCell::new(Vec::new()) };
}

/// A kept plan; a backend has one thread.
#[derive(Clone, Copy)]
struct SendPlan(pg_sys::SPIPlanPtr);

/// Prepares `sql` for `args`' types.
unsafe fn prepare(sql: &str, args: &[DatumWithOid<'_>]) -> Result<pg_sys::SPIPlanPtr, DriftError> {
    let sql =
        CString::new(sql).map_err(|_| DriftError::Internal("a statement holds a NUL byte"))?;
    let mut argtypes: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let plan = pg_sys::SPI_prepare(sql.as_ptr(), args.len() as i32, argtypes.as_mut_ptr());
    if plan.is_null() {
        return Err(DriftError::Internal("a statement could not be prepared"));
    }
    Ok(plan)
}

fn run(
    client: &SpiClient<'_>,
    plan: Plan<'_>,
    args: &[DatumWithOid<'_>],
    types: &[pg_sys::Oid],
    mut each: impl FnMut(&Row<'_>) -> Result<(), DriftError>,
) -> Result<(), DriftError> {
    // Only ever called inside an SPI connection (the client proves it).
    let _ = client;
    let mut receiver = Receiver {
        base: pg_sys::DestReceiver {
            receiveSlot: Some(receive_slot),
            rStartup: Some(startup),
            rShutdown: Some(nothing),
            rDestroy: Some(nothing),
            // Not DestSPI: SPI would then expect its own tuple table.
            mydest: pg_sys::CommandDest::DestNone,
        },
        types,
        natts: 0,
        each: &mut each,
        result: Ok(()),
    };
    // SAFETY: the receiver outlives the execution (it is on this frame); parameters are built
    // in the current (SPI procedure) memory context from datums the caller keeps alive; a
    // one-off plan is freed after use, a kept one lives in CacheMemoryContext. Errors raised by
    // Postgres unwind through pgrx's FFI guard.
    let status = unsafe {
        // As pgrx's own SPI calls: read-only while this transaction has written nothing.
        let read_only = pg_sys::GetCurrentTransactionIdIfAny() == pg_sys::InvalidTransactionId;
        let mut options = pg_sys::SPIExecuteOptions {
            params: std::ptr::null_mut(),
            read_only,
            allow_nonatomic: false,
            must_return_tuples: false,
            tcount: 0,
            dest: &mut receiver.base,
            owner: std::ptr::null_mut(),
        };
        if !args.is_empty() {
            let n = args.len();
            let params = pg_sys::makeParamList(n as i32);
            let slots = (*params).params.as_mut_slice(n);
            for (slot, arg) in slots.iter_mut().zip(args) {
                let datum = arg.datum();
                let isnull = datum.is_none();
                *slot = pg_sys::ParamExternData {
                    value: datum.map_or(pg_sys::Datum::from(0usize), |d| d.sans_lifetime()),
                    isnull,
                    pflags: pg_sys::PARAM_FLAG_CONST as u16,
                    ptype: arg.oid(),
                };
            }
            options.params = params;
        }
        match plan {
            Plan::Once(sql) if args.is_empty() => {
                let sql = CString::new(sql)
                    .map_err(|_| DriftError::Internal("a statement holds a NUL byte"))?;
                pg_sys::SPI_execute_extended(sql.as_ptr(), &options)
            }
            Plan::Once(sql) => {
                let plan = prepare(sql, args)?;
                let status = pg_sys::SPI_execute_plan_extended(plan, &options);
                pg_sys::SPI_freeplan(plan);
                status
            }
            Plan::Saved(sql) => {
                let key = (sql.as_ptr() as usize, sql.len());
                let kept = SAVED.with_borrow(|saved| {
                    saved
                        .iter()
                        .find(|(p, l, _)| (*p, *l) == key)
                        .map(|(_, _, plan)| *plan)
                });
                let plan = match kept {
                    Some(SendPlan(plan)) => plan,
                    None => {
                        let plan = prepare(sql, args)?;
                        if pg_sys::SPI_keepplan(plan) != 0 {
                            return Err(DriftError::Internal("a plan could not be kept"));
                        }
                        SAVED.with_borrow_mut(|saved| saved.push((key.0, key.1, SendPlan(plan))));
                        plan
                    }
                };
                pg_sys::SPI_execute_plan_extended(plan, &options)
            }
        }
    };
    if status < 0 {
        return Err(DriftError::Internal("a statement failed in SPI"));
    }
    receiver.result
}

/// Our `DestReceiver`: Postgres's struct first, so a pointer to it is a pointer to this.
#[repr(C)]
struct Receiver<'a> {
    base: pg_sys::DestReceiver,
    types: &'a [pg_sys::Oid],
    natts: usize,
    each: &'a mut dyn FnMut(&Row<'_>) -> Result<(), DriftError>,
    /// The first error: from the descriptor check or from `each`. Stops the query.
    result: Result<(), DriftError>,
}

#[pg_guard]
unsafe extern "C-unwind" fn startup(
    this: *mut pg_sys::DestReceiver,
    _operation: std::ffi::c_int,
    desc: pg_sys::TupleDesc,
) {
    // SAFETY: `this` is the `base` of a live `Receiver` (for_each passes no other), `desc` the
    // result's descriptor.
    let this = &mut *(this as *mut Receiver<'_>);
    let natts = (*desc).natts as usize;
    let attrs = (*desc).attrs.as_slice(natts);
    let matches = attrs.len() == this.types.len()
        && attrs
            .iter()
            .zip(this.types)
            .all(|(attr, t)| attr.atttypid == *t);
    this.natts = natts;
    if !matches {
        this.result = Err(DriftError::Internal(
            "a result's column types are not the ones its reader expects",
        ));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn receive_slot(
    slot: *mut pg_sys::TupleTableSlot,
    this: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: as in `startup`; the slot's values stay valid until we return.
    let this = &mut *(this as *mut Receiver<'_>);
    if this.result.is_err() {
        return false;
    }
    // A projection's virtual slot has every value already; a stored tuple is deformed once
    // (the check spares a guarded FFI call per row).
    if ((*slot).tts_nvalid as usize) < this.natts {
        pg_sys::slot_getallattrs(slot);
    }
    let values = std::slice::from_raw_parts((*slot).tts_values, this.natts);
    let nulls = std::slice::from_raw_parts((*slot).tts_isnull, this.natts);
    this.result = (this.each)(&Row { values, nulls });
    this.result.is_ok()
}

#[pg_guard]
unsafe extern "C-unwind" fn nothing(_this: *mut pg_sys::DestReceiver) {}
