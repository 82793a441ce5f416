-- The user-facing functions, also where the default search_path ("$user", public) finds them, so
-- `SELECT * FROM drift_diff();` works as written. They belong to the extension (DROP EXTENSION
-- removes them), only forward to drift_watch.*, pin their search_path like every other function,
-- and are executable by the same roles as what they forward to. Where `public` is writable by
-- others, superusers should call drift_watch.* by its qualified name (see README, Security).
CREATE FUNCTION public.drift_diff(target text DEFAULT NULL)
RETURNS TABLE (source_name text, schema_name text, table_name text, column_name text,
               change text, contract_type text, live_type text, detail text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM drift_watch.drift_diff(target) $$;

CREATE FUNCTION public.load_contract(origin text, document text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.load_contract(origin, document) $$;

CREATE FUNCTION public.forget_contract(origin text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.forget_contract(origin) $$;

CREATE FUNCTION public.run_check(target text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.run_check(target) $$;

CREATE FUNCTION public.schedule_check(target text DEFAULT NULL, schedule text DEFAULT '0 6 * * *')
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.schedule_check(target, schedule) $$;

CREATE FUNCTION public.unschedule_check(target text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.unschedule_check(target) $$;

REVOKE EXECUTE ON FUNCTION public.drift_diff(text), public.load_contract(text, text),
                           public.forget_contract(text), public.run_check(text),
                           public.schedule_check(text, text), public.unschedule_check(text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.drift_diff(text), public.run_check(text),
                          public.schedule_check(text, text), public.unschedule_check(text)
   TO drift_watch_checker;
GRANT EXECUTE ON FUNCTION public.load_contract(text, text), public.forget_contract(text)
   TO drift_watch_loader;

-- Functions pgrx generated are in drift_watch too (created before sql/checks.sql revoked
-- PUBLIC's EXECUTE on the schema's functions); make sure nothing created since is left open.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA drift_watch FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drift_watch.load_contract(text, text), drift_watch.forget_contract(text),
                          drift_watch.forget_contracts_under(text),
                          drift_watch.contract_summary(text[])
   TO drift_watch_loader;
