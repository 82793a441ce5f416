-- Contract data types through the server's own type parser: the type oid, the modifier (NULL when
-- the spelling has none) and the canonical spelling (format_type). Built-in types with fixed oids
-- (below 10000, the same on every server and major) are answered here; any other name (enum,
-- domain, user type, or a type initdb numbers, such as information_schema's) is marked
-- `needs_target` and resolved on the target,
-- where the application's types live. A spelling Postgres cannot parse gets its error text.
CREATE FUNCTION drift_watch._canonical_types(spellings text[])
RETURNS TABLE (spelling text, type_oid oid, typmod integer, canonical text, needs_target boolean,
               parse_error text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text;
    t oid;
    m integer;
BEGIN
    FOREACH s IN ARRAY spellings LOOP
        spelling := s;
        type_oid := NULL;
        typmod := NULL;
        canonical := NULL;
        needs_target := false;
        parse_error := NULL;
        BEGIN
            SELECT p.type_oid, p.typmod INTO t, m FROM drift_watch._parse_type(s) AS p;
            -- pgrx returns InvalidOid as NULL.
            IF t IS NULL OR t = 0 OR t >= 10000::oid THEN
                needs_target := true;
            ELSE
                type_oid := t;
                IF m >= 0 THEN
                    typmod := m;
                END IF;
                canonical := format_type(t, typmod);
            END IF;
        EXCEPTION WHEN others THEN
            parse_error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
