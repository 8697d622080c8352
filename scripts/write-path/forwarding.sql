-- The forwarding write path, as evaluated in docs/conflicts.md ("A write path without a second
-- row"): base tables published as they are, every node subscribing to every other with
-- origin = any, so each node forwards what it applies; BEFORE triggers stamp local writes and
-- merge incoming ones. No change record is written for an INSERT or UPDATE.
--
-- Run once per node, then SELECT _pgc_fwd.set_node('n1', 1) (a name and a number distinct per
-- node) and SELECT _pgc_fwd.install('schema.table'::regclass) for each table, on every node,
-- before the publication and subscriptions are created.
--
-- Per row: _pgc_birth identifies the incarnation (the insert that created it: µs × 256 + the
-- node's number, so two nodes never share one), _pgc_version/_pgc_origin the latest write of
-- that incarnation. Order: incarnation first, then version. The replica identity is the
-- primary key plus _pgc_birth, so an incoming UPDATE or DELETE only touches the incarnation it
-- was made on; one made on another incarnation is skipped by PostgreSQL itself.

CREATE SCHEMA IF NOT EXISTS _pgc_fwd;

-- This node's name and number (1–255, distinct per node); the only per-node objects.
CREATE OR REPLACE FUNCTION _pgc_fwd.set_node(p_name text, p_no int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_no NOT BETWEEN 1 AND 255 THEN RAISE EXCEPTION 'node number % is not in 1..255', p_no; END IF;
  EXECUTE format('CREATE OR REPLACE FUNCTION _pgc_fwd.node_name() RETURNS text
    LANGUAGE sql IMMUTABLE AS %L', format('SELECT %L::text', p_name));
  EXECUTE format('CREATE OR REPLACE FUNCTION _pgc_fwd.node_no() RETURNS bigint
    LANGUAGE sql IMMUTABLE AS %L', format('SELECT %s::bigint', p_no));
END $$;

-- Highest deleted incarnation per key: a max-register. An INSERT of this incarnation or an
-- older one is dropped; a local re-insert is born above it.
CREATE TABLE IF NOT EXISTS _pgc_fwd.tombstones (
  tbl text NOT NULL,
  key jsonb NOT NULL,
  birth bigint NOT NULL,
  PRIMARY KEY (tbl, key)
);

-- Lets a local transaction, not the apply worker, be the victim of a deadlock between them.
-- No node-wide apply lock can serialise apply workers here: PostgreSQL locks the row an
-- incoming UPDATE or DELETE names before any trigger runs, so a worker would wait for the
-- lock while holding a row another worker (holding the lock) needs (docs/conflicts.md).
CREATE OR REPLACE FUNCTION _pgc_fwd.apply_session() RETURNS void
LANGUAGE sql AS $$
  SELECT pg_catalog.set_config('deadlock_timeout', '10s', true)
$$;

CREATE OR REPLACE FUNCTION _pgc_fwd.merge_tombstone(p_tbl text, p_key jsonb, p_birth bigint)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO _pgc_fwd.tombstones AS t (tbl, key, birth) VALUES (p_tbl, p_key, p_birth)
  ON CONFLICT (tbl, key) DO UPDATE SET birth = excluded.birth WHERE t.birth < excluded.birth
$$;

-- Generates the table's six small functions and triggers, adds the stamp columns and the
-- replica identity. Idempotent.
CREATE OR REPLACE FUNCTION _pgc_fwd.install(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $install$
DECLARE
  qual text := (SELECT format('%I.%I', n.nspname, c.relname)
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table);
  base text := (SELECT relname FROM pg_class WHERE oid = p_table);
  tag text;  -- names the table's functions, the same on every node
  key_cols text[];
  other_cols text[];
  key_json text;   -- jsonb_build_array(NEW.k1, …)
  key_match text;  -- k1 = NEW.k1 AND …
  key_changed text;
  set_list text;
  toast_force text := '';
  f text;
BEGIN
  PERFORM set_config('client_min_messages', 'warning', true);
  tag := left(md5(qual), 12);
  SELECT array_agg(quote_ident(a.attname) ORDER BY array_position(i.indkey::int2[], a.attnum))
    INTO key_cols
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
   WHERE i.indrelid = p_table AND i.indisprimary;
  IF key_cols IS NULL THEN RAISE EXCEPTION '% has no primary key', qual; END IF;

  EXECUTE format('ALTER TABLE %s
      ADD COLUMN IF NOT EXISTS _pgc_birth bigint NOT NULL DEFAULT 0,
      ADD COLUMN IF NOT EXISTS _pgc_version bigint NOT NULL DEFAULT 0,
      ADD COLUMN IF NOT EXISTS _pgc_origin text NOT NULL DEFAULT %L', qual, '');

  SELECT array_agg(quote_ident(attname) ORDER BY attnum) INTO other_cols
    FROM pg_attribute
   WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped
     AND quote_ident(attname) <> ALL (key_cols);
  -- The key as the register stores it, the same on every node whatever the session's
  -- TimeZone, bytea_output or spelling of a number.
  SELECT 'pg_catalog.jsonb_build_array(' || string_agg(
           CASE a.atttypid
             WHEN 'timestamptz'::regtype THEN format('(NEW.%s AT TIME ZONE ''UTC'')', c)
             WHEN 'bytea'::regtype THEN format('pg_catalog.encode(NEW.%s, ''hex'')', c)
             WHEN 'numeric'::regtype THEN format('pg_catalog.trim_scale(NEW.%s)', c)
             WHEN 'interval'::regtype THEN format('EXTRACT(EPOCH FROM NEW.%s)', c)
             ELSE 'NEW.' || c END, ', ' ORDER BY k.ord) || ')',
         string_agg(format('%s = NEW.%s', c, c), ' AND '),
         string_agg(format('NEW.%s IS DISTINCT FROM OLD.%s', c, c), ' OR ')
    INTO key_json, key_match, key_changed
    FROM unnest(key_cols) WITH ORDINALITY k(c, ord)
    JOIN pg_attribute a ON a.attrelid = p_table AND quote_ident(a.attname) = k.c;
  SELECT string_agg(format('%s = NEW.%s', c, c), ', ') INTO set_list FROM unnest(other_cols) c;
  -- An out-of-line value an UPDATE leaves alone is sent as "unchanged", and a receiver fills it
  -- from its own row, which may be another version: a value taken through an array (whose
  -- elements are never stored out of line) is stored and sent again. Only values large enough
  -- to be stored out of line pay for it.
  SELECT coalesce(string_agg(format(
           'IF pg_catalog.pg_column_size(NEW.%s) > 1800 THEN NEW.%s := (ARRAY[NEW.%s])[1]; END IF;', a, a, a), E'\n  '), '')
    INTO toast_force
    FROM (SELECT quote_ident(attname) a FROM pg_attribute
           WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped AND attstorage <> 'p') s;

  -- Local INSERT: a new incarnation, born above the key's tombstone.
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
DECLARE
  dead bigint;
  v bigint := (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000000)::bigint
    + COALESCE(NULLIF(pg_catalog.current_setting('pgconverge.clock_offset_ms', true), ''), '0')::bigint * 1000;
BEGIN
  -- A live row of the key makes this insert fail, unless a transaction is deleting it: then
  -- wait for that transaction, so the tombstone it writes is read below (in REPEATABLE READ
  -- a serialization failure: retry).
  PERFORM 1 FROM %s WHERE %s FOR KEY SHARE;
  SELECT birth INTO dead FROM _pgc_fwd.tombstones WHERE tbl = %L AND key = %s;
  IF dead >= v * 256 THEN v := dead / 256 + 1; END IF;
  NEW._pgc_birth := v * 256 + _pgc_fwd.node_no();
  NEW._pgc_version := v;
  NEW._pgc_origin := _pgc_fwd.node_name();
  RETURN NEW;
END $b$$f$, 'ins_' || tag, qual, key_match, qual, key_json);
  EXECUTE f;

  -- Local UPDATE: a new version of the same incarnation. The primary key cannot change: a new
  -- key is a new incarnation, which only an INSERT may create (see docs/conflicts.md).
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
BEGIN
  IF %s OR NEW._pgc_birth <> OLD._pgc_birth THEN
    RAISE EXCEPTION 'the primary key of %% cannot change on this write path: delete the row and insert the new one', %L
      USING ERRCODE = 'feature_not_supported';
  END IF;
  NEW._pgc_version := GREATEST((EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000000)::bigint
    + COALESCE(NULLIF(pg_catalog.current_setting('pgconverge.clock_offset_ms', true), ''), '0')::bigint * 1000,
    OLD._pgc_version + 1);
  NEW._pgc_origin := _pgc_fwd.node_name();
  %s
  RETURN NEW;
END $b$$f$, 'upd_' || tag, key_changed, qual, toast_force);
  EXECUTE f;

  -- Local DELETE: the incarnation is dead on this node; the register makes it dead for good.
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
BEGIN
  PERFORM _pgc_fwd.merge_tombstone(%L, %s, OLD._pgc_birth);
  RETURN OLD;
END $b$$f$, 'del_' || tag, qual, replace(key_json, 'NEW.', 'OLD.'));
  EXECUTE f;

  -- Incoming INSERT (REPLICA): merged with whatever this node holds for the key. The row is
  -- written by the function itself (ON CONFLICT DO NOTHING, retried), so a local insert racing
  -- it is never an apply error.
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
DECLARE
  cur record;
  dead bigint;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN RETURN NEW; END IF;
  PERFORM _pgc_fwd.apply_session();
  SELECT birth INTO dead FROM _pgc_fwd.tombstones WHERE tbl = %L AND key = %s;
  IF dead >= NEW._pgc_birth THEN RETURN NULL; END IF;
  LOOP
    SELECT _pgc_birth, _pgc_version, _pgc_origin INTO cur FROM %s WHERE %s FOR UPDATE;
    IF NOT FOUND THEN
      -- The row may have gone while this waited for its lock: its delete's tombstone, which
      -- the check above could not see yet, decides.
      SELECT birth INTO dead FROM _pgc_fwd.tombstones WHERE tbl = %L AND key = %s;
      IF dead >= NEW._pgc_birth THEN RETURN NULL; END IF;
      INSERT INTO %s VALUES (NEW.*) ON CONFLICT DO NOTHING;
      IF FOUND THEN RETURN NULL; END IF;
      CONTINUE;
    END IF;
    IF (NEW._pgc_birth, NEW._pgc_version, NEW._pgc_origin COLLATE "C")
       > (cur._pgc_birth, cur._pgc_version, cur._pgc_origin COLLATE "C") THEN
      UPDATE %s SET %s WHERE %s;
    END IF;
    RETURN NULL;
  END LOOP;
END $b$$f$, 'rins_' || tag, qual, key_json, qual, key_match, qual, key_json, qual, qual, set_list, key_match);
  EXECUTE f;

  -- Incoming UPDATE (REPLICA): PostgreSQL found this node's row of the same incarnation as the
  -- sender's old row. Same incarnation: the greater version wins. A forwarded replacement by a
  -- newer incarnation: taken unless that incarnation is dead here.
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
DECLARE
  dead bigint;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN RETURN NEW; END IF;
  PERFORM _pgc_fwd.apply_session();
  IF NEW._pgc_birth = OLD._pgc_birth THEN
    IF (NEW._pgc_version, NEW._pgc_origin COLLATE "C") > (OLD._pgc_version, OLD._pgc_origin COLLATE "C") THEN
      RETURN NEW;
    END IF;
    RETURN NULL;
  END IF;
  IF NEW._pgc_birth < OLD._pgc_birth THEN RETURN NULL; END IF;
  SELECT birth INTO dead FROM _pgc_fwd.tombstones WHERE tbl = %L AND key = %s;
  IF dead >= NEW._pgc_birth THEN RETURN NULL; END IF;
  RETURN NEW;
END $b$$f$, 'rupd_' || tag, qual, key_json);
  EXECUTE f;

  -- Incoming DELETE (REPLICA): it names this node's incarnation, so it wins over any version
  -- of it; the register records it.
  f := format($f$
CREATE OR REPLACE FUNCTION _pgc_fwd.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN RETURN OLD; END IF;
  PERFORM _pgc_fwd.apply_session();
  PERFORM _pgc_fwd.merge_tombstone(%L, %s, OLD._pgc_birth);
  RETURN OLD;
END $b$$f$, 'rdel_' || tag, qual, replace(key_json, 'NEW.', 'OLD.'));
  EXECUTE f;

  EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %s (%s, _pgc_birth)',
                 base || '_pgc_identity', qual, array_to_string(key_cols, ', '));
  EXECUTE format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', qual, base || '_pgc_identity');

  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_10_ins ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_10_ins BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'ins_' || tag);
  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_10_upd ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_10_upd BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'upd_' || tag);
  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_90_del ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_90_del AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'del_' || tag);
  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_apply_ins ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_apply_ins BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'rins_' || tag);
  EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER _pgc_apply_ins', qual);
  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_apply_upd ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_apply_upd BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'rupd_' || tag);
  EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER _pgc_apply_upd', qual);
  EXECUTE format('DROP TRIGGER IF EXISTS _pgc_apply_del ON %s', qual);
  EXECUTE format('CREATE TRIGGER _pgc_apply_del BEFORE DELETE ON %s FOR EACH ROW EXECUTE FUNCTION _pgc_fwd.%I()', qual, 'rdel_' || tag);
  EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER _pgc_apply_del', qual);
END $install$;
