-- schedule_check(): one pg_cron job per target, idempotent, and it really fires. Runs last: the
-- job is unscheduled at the end so it cannot touch other suites.
SET client_min_messages = warning;
SELECT load_contract('models/app.yml', $yaml$
sources:
  - name: public
    tables:
      - name: customers
      - name: not_there_yet
$yaml$);

-- Idempotent: scheduling the same target twice updates the one job.
SELECT schedule_check('app', '0 6 * * *') AS job \gset
SELECT schedule_check('app', '* * * * *') = :job AS same_job;
SELECT jobname, schedule, command, database FROM cron.job WHERE jobid = :job;
SELECT count(*) AS jobs FROM cron.job WHERE jobname LIKE 'drift_watch:%';

-- An unknown target is refused before a job exists.
SELECT schedule_check('no_such_server');

-- Wait (up to 150 s) for pg_cron to run it: a succeeded job run and a run row for the target.
SELECT coalesce(max(id), 0) AS before FROM drift_watch.check_run \gset
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '150 seconds';
BEGIN
    LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                           WHERE j.jobname = 'drift_watch: app' AND d.status = 'succeeded');
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'pg_cron did not run the job within 150 s: %',
                (SELECT string_agg(status || ': ' || coalesce(return_message, ''), '; ')
                   FROM cron.job_run_details);
        END IF;
        PERFORM pg_sleep(1);
    END LOOP;
END
$$;
SELECT status, target, deltas_new, deltas_open FROM drift_watch.runs WHERE run_id > :before LIMIT 1;
SELECT table_name, change FROM drift_watch.open_deltas WHERE target = 'app';

-- Unscheduling removes the job; a second time there is nothing to remove.
SELECT unschedule_check('app') AS removed, unschedule_check('app') AS removed_again;
SELECT count(*) AS jobs FROM cron.job WHERE jobname LIKE 'drift_watch:%';

-- Without pg_cron in the database, drift_watch still installs, and scheduling says what to do.
\c nocron
SET client_min_messages = warning;
CREATE EXTENSION drift_watch CASCADE;
SELECT count(*) AS deltas FROM drift_diff();
SELECT schedule_check('app_replica');
\c regress
SET client_min_messages = warning;
SELECT forget_contract(origin) FROM drift_watch.contract_origin;
