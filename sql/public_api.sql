-- The user-facing functions, also where the default search_path ("$user", public) finds them, so
-- `SELECT * FROM drift_diff();` works as written for any role. They belong to the extension
-- (DROP EXTENSION removes them) and only forward to drift_watch.*.
CREATE FUNCTION public.drift_diff(target text DEFAULT NULL)
RETURNS TABLE (source_name text, schema_name text, table_name text, column_name text,
               change text, contract_type text, live_type text, detail text)
LANGUAGE sql VOLATILE
AS $$ SELECT * FROM drift_watch.drift_diff(target) $$;

CREATE FUNCTION public.load_contract(origin text, document text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT
AS $$ SELECT drift_watch.load_contract(origin, document) $$;

CREATE FUNCTION public.forget_contract(origin text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT
AS $$ SELECT drift_watch.forget_contract(origin) $$;

CREATE FUNCTION public.run_check(target text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT drift_watch.run_check(target) $$;

CREATE FUNCTION public.schedule_check(target text DEFAULT NULL, schedule text DEFAULT '0 6 * * *')
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT drift_watch.schedule_check(target, schedule) $$;

CREATE FUNCTION public.unschedule_check(target text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
AS $$ SELECT drift_watch.unschedule_check(target) $$;
