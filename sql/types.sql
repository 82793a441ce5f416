-- Canonical spellings of contract data types, by the server's own type parser.
-- Built-in types are answered here (format_type of the parsed type); a name this database does not
-- know as a built-in (enum, domain, any user type) is marked `needs_target` and resolved on the
-- target, where the application's types live. A spelling Postgres cannot parse gets its error text.
CREATE FUNCTION drift_watch._canonical_types(spellings text[])
RETURNS TABLE (spelling text, base_type text, full_type text, needs_target boolean, parse_error text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    s text;
    t oid;
    m integer;
BEGIN
    FOREACH s IN ARRAY spellings LOOP
        spelling := s;
        base_type := NULL;
        full_type := NULL;
        needs_target := false;
        parse_error := NULL;
        BEGIN
            SELECT p.type_oid, p.typmod INTO t, m FROM drift_watch._parse_type(s) p;
            -- pgrx returns InvalidOid as NULL.
            IF t IS NULL OR t = 0 OR t >= 16384::oid THEN
                needs_target := true;
            ELSE
                base_type := format_type(t, NULL);
                IF m >= 0 THEN
                    full_type := format_type(t, m);
                END IF;
            END IF;
        EXCEPTION WHEN others THEN
            parse_error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
