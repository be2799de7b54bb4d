-- Who may review where, the review claim, and the rule that ends the review leases of whoever
-- may no longer hold them. Told in qa/reviews.py; the migration installs this file as it is, and
-- a test fails when the installed functions differ from it.


-- The review layers a member may hold a lease at now: the layer's project is not archived,
-- their account and their membership of the organization are active, and either they are a QA
-- lead (every layer of the organization's projects), or they are a reviewer, the layer's role is
-- ``reviewer``, and their working profile is active with an active reviewer membership of the
-- layer's project. The claim grants leases
-- by it, heartbeats check it, and the rule below ends leases by it. What a layer asks of its
-- reviewers' skill and certifications is the claim's to check (``qa_review_qualification``): a
-- lease already held outlives a change of it, as task leases do.
-- Plain SQL returning rows, stable and not strict, so that the planner inlines it.
CREATE OR REPLACE FUNCTION qa_review_layers(p_member bigint)
RETURNS TABLE (layer_id bigint, project_id bigint)
LANGUAGE sql STABLE
AS $$
SELECT l.id, l.project_id
FROM workforce_member wm
JOIN auth_user u ON u.id = wm.user_id
JOIN tasks_project p ON p.organization_id = wm.organization_id
JOIN qa_reviewlayer l ON l.project_id = p.id
WHERE wm.id = p_member
  AND p.status <> 'archived'
  AND wm.is_active AND u.is_active
  AND (wm.role = 'qa_lead'
       OR (wm.role = 'reviewer'
           AND l.role = 'reviewer'
           AND EXISTS (SELECT 1 FROM workforce_annotator w
                       JOIN tasks_projectmember m ON m.annotator_id = w.id
                       WHERE w.member_id = wm.id
                         AND w.status = 'active'
                         AND m.project_id = p.id
                         AND m.is_active AND m.role = 'reviewer')))
$$;


-- Whether a member holds what a layer asks of its reviewers, and what they lack: the layer's
-- minimum level in the project's kind and a certification in force in each domain it requires,
-- by the rule annotators are held to (``tasks_skill_qualification``, claims.sql), read from the
-- member's working profile. A member without one (a QA lead who never annotated) holds level 0
-- and no certification.
CREATE OR REPLACE FUNCTION qa_review_qualification(
    p_member bigint, p_layer bigint, p_now timestamptz
) RETURNS TABLE (qualified boolean, skill_level smallint, unmet jsonb)
LANGUAGE sql STABLE
AS $$
SELECT q.qualified, q.skill_level, q.unmet
FROM qa_reviewlayer l
JOIN tasks_project p ON p.id = l.project_id
LEFT JOIN workforce_annotator w ON w.member_id = p_member
-- The domains read apart, so that the planner inlines the function (tasks_qualification).
CROSS JOIN LATERAL (
    SELECT ARRAY(SELECT rd.domain_id FROM qa_reviewlayer_required_domains rd
                 WHERE rd.reviewlayer_id = l.id) AS ids
) required
CROSS JOIN LATERAL tasks_skill_qualification(
    w.id, p.kind, l.min_skill_level, required.ids, p_now) q
WHERE l.id = p_layer
$$;


-- The key of a member's review claim lock: a transaction-level advisory lock rather than a lock
-- of the member's row, because the access changes that take it hold row locks of their own
-- (the member's, their profile's, a project membership's) taken in varying order; taken last,
-- after all of those, it never closes a cycle. A range of keys no other lock of Assay's uses.
CREATE OR REPLACE FUNCTION qa_review_member_key(p_member bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$
SELECT 4707196491838521344 + p_member  -- 0x4153524500000000, "ASRE" and a member id
$$;


-- Lease the next review item a member may judge, in one short transaction; see review_claim.
CREATE OR REPLACE FUNCTION qa_review_claim(
    p_member bigint, p_project bigint, p_layer integer, p_now timestamptz
) RETURNS TABLE (
    o_outcome text, o_item bigint, o_layer bigint, o_position smallint, o_layer_name text,
    o_project bigint, o_project_name text, o_kind text, o_instructions text, o_schema jsonb,
    o_tags jsonb, o_task bigint, o_data jsonb, o_annotation bigint, o_version integer,
    o_payload jsonb, o_expires timestamptz, o_unqualified bigint[]
)
LANGUAGE plpgsql VOLATILE
-- Plans are made once per connection, often while the tables are small; without this they
-- would keep sequential scans while the queues grow.
SET enable_seqscan = off
AS $$
DECLARE
    live_by_project jsonb;
    cand record;
    picked bigint;
BEGIN
    -- Serialises this member's claims so that their limits hold; nobody else's claims wait. An
    -- access change takes it too (below), so the access read after it is the one that stands.
    PERFORM pg_advisory_xact_lock(qa_review_member_key(p_member));
    -- The member's unexpired review leases, per project, in one pass.
    SELECT COALESCE(jsonb_object_agg(live.project_id, live.n), '{}')
    INTO live_by_project
    FROM (SELECT i.project_id, COUNT(*) AS n FROM qa_reviewitem i
          WHERE i.reviewer_id = p_member AND i.state = 'leased'
            AND i.lease_expires_at > p_now
          GROUP BY i.project_id) AS live;

    -- Without an item, the outcome says the most hopeful thing found: nothing waiting now at a
    -- layer they may review, else their limit there, else that they are not qualified.
    o_outcome := 'no_layers';
    FOR cand IN
        SELECT l.id, l.position, l.name, p.id AS project_id, p.name AS project_name, p.kind,
            p.instructions, p.label_schema, p.lease_seconds, q.qualified,
            COALESCE((live_by_project ->> p.id::text)::bigint, 0)
                < p.max_concurrent_tasks AS has_room
        FROM qa_review_layers(p_member) rl
        JOIN qa_reviewlayer l ON l.id = rl.layer_id
        JOIN tasks_project p ON p.id = l.project_id
        CROSS JOIN LATERAL qa_review_qualification(p_member, l.id, p_now) q
        WHERE p.status = 'active'
          AND (p_project IS NULL OR p.id = p_project)
          AND (p_layer IS NULL OR l.position = p_layer)
        -- Projects as the task claim orders them; within one, the later layers first: what
        -- waits there has passed the earlier ones, and judging it finishes work.
        ORDER BY p.priority DESC, p.deadline ASC NULLS LAST, p.id, l.position DESC
    LOOP
        IF NOT cand.qualified THEN
            IF o_outcome = 'no_layers' THEN o_outcome := 'not_qualified'; END IF;
            o_unqualified := array_append(o_unqualified, cand.id);
            CONTINUE;
        END IF;
        IF NOT cand.has_room THEN
            IF o_outcome <> 'none_available' THEN o_outcome := 'at_limit'; END IF;
            CONTINUE;
        END IF;
        o_outcome := 'none_available';
        -- A lapsed lease first (it has waited longest), then the oldest waiting item. Never the
        -- member's own work, never an annotation they judged at another layer, never an item
        -- they gave back, never a task made gold since it arrived. Rows other claimers hold
        -- are skipped, never waited for. The tests of the member's reviews and of gold are one
        -- index probe per item each, kept so by OFFSET 0 (as in tasks_claim: as anti-joins
        -- planned on lagging statistics they read all the member's reviews, or every gold task
        -- of every project, for each item passed).
        SELECT i.id INTO picked FROM qa_reviewitem i
        WHERE i.layer_id = cand.id AND i.state = 'leased' AND i.lease_expires_at <= p_now
          AND i.author_member_id <> p_member
          AND NOT p_member = ANY(i.released_by)
          AND NOT EXISTS (SELECT 1 FROM qa_review r
                          WHERE r.annotation_id = i.annotation_id AND r.reviewer_id = p_member
                            AND r.layer_id <> i.layer_id OFFSET 0)
          AND NOT EXISTS (SELECT 1 FROM tasks_task t WHERE t.id = i.task_id AND t.is_gold
                          OFFSET 0)
        ORDER BY i.lease_expires_at
        LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            SELECT i.id INTO picked FROM qa_reviewitem i
            WHERE i.layer_id = cand.id AND i.state = 'open'
              AND i.author_member_id <> p_member
              AND NOT p_member = ANY(i.released_by)
              AND NOT EXISTS (SELECT 1 FROM qa_review r
                              WHERE r.annotation_id = i.annotation_id
                                AND r.reviewer_id = p_member AND r.layer_id <> i.layer_id OFFSET 0)
              AND NOT EXISTS (SELECT 1 FROM tasks_task t WHERE t.id = i.task_id AND t.is_gold
                              OFFSET 0)
            -- Oldest arrival first, by review_item_open_idx. Ordered by id alone, the claim
            -- could as well walk the primary key, which the planner prefers on statistics
            -- taken when the whole layer waited, passing every item leased or judged since.
            ORDER BY i.arrived_at, i.id
            LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
        END IF;
        o_expires := p_now + make_interval(secs => cand.lease_seconds);
        UPDATE qa_reviewitem SET state = 'leased', reviewer_id = p_member, leased_at = p_now,
            lease_expires_at = o_expires
        WHERE id = picked
        RETURNING annotation_id, version, task_id INTO o_annotation, o_version, o_task;
        SELECT a.payload INTO o_payload FROM tasks_annotation a WHERE a.id = o_annotation;
        SELECT t.data INTO o_data FROM tasks_task t WHERE t.id = o_task;
        -- The project's error taxonomy, which a rejection picks its tags from.
        SELECT COALESCE(jsonb_agg(tag ORDER BY tag.code), jsonb_build_array()) INTO o_tags
        FROM (SELECT e.code, e.description FROM qa_errortag e
              WHERE e.project_id = cand.project_id) AS tag;
        o_outcome := 'claimed';
        o_item := picked;
        o_layer := cand.id;
        o_position := cand.position;
        o_layer_name := cand.name;
        o_project := cand.project_id;
        o_project_name := cand.project_name;
        o_kind := cand.kind;
        o_instructions := cand.instructions;
        o_schema := cand.label_schema;
        RETURN NEXT;
        RETURN;
    END LOOP;
    RETURN NEXT;
END;
$$;


-- End every review lease the members hold at a layer where they may no longer hold one; return
-- how many. The item opens for others at once, as a release does (without barring the member
-- from it). A lease that lapsed is ended too: its holder could otherwise heartbeat it back.
-- A rule of the database, not a hook of the services: the admin, a bulk update and plain SQL
-- end access as surely as a service does, each in its own transaction.
CREATE OR REPLACE FUNCTION qa_review_leases_end_without_access(p_members bigint[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    ended integer;
BEGIN
    -- The members' claim locks, in id order. A claim in flight holds its member's until it
    -- commits: waiting for it here means its new lease is seen below and ended, and a claim
    -- after this waits for this transaction and then reads the access it changed.
    PERFORM pg_advisory_xact_lock(qa_review_member_key(m.id))
    FROM unnest(p_members) AS m(id) ORDER BY m.id;
    UPDATE qa_reviewitem SET state = 'open', reviewer_id = NULL, leased_at = NULL,
        lease_expires_at = NULL
    WHERE reviewer_id = ANY(p_members) AND state = 'leased'
      AND NOT EXISTS (SELECT 1 FROM qa_review_layers(qa_reviewitem.reviewer_id) rl
                      WHERE rl.layer_id = qa_reviewitem.layer_id);
    GET DIAGNOSTICS ended = ROW_COUNT;
    RETURN ended;
END;
$$;


-- One trigger function per table that decides access, each naming whose leases to look at.

CREATE OR REPLACE FUNCTION qa_review_member_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(ARRAY[NEW.id]);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_review_user_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(
        ARRAY(SELECT wm.id FROM workforce_member wm WHERE wm.user_id = NEW.id));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_review_annotator_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(ARRAY[NEW.member_id]);
    RETURN NULL;
END;
$$;

-- For an update and a delete alike: the row as it was names the member.
CREATE OR REPLACE FUNCTION qa_review_project_member_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(
        ARRAY(SELECT w.member_id FROM workforce_annotator w WHERE w.id = OLD.annotator_id));
    RETURN NULL;
END;
$$;

-- A layer given to QA leads only: the reviewers holding its items lose them.
CREATE OR REPLACE FUNCTION qa_review_layer_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(
        ARRAY(SELECT DISTINCT i.reviewer_id FROM qa_reviewitem i
              WHERE i.layer_id = NEW.id AND i.state = 'leased'));
    RETURN NULL;
END;
$$;

-- A project archived: the reviewers holding its items lose them, as its annotators lose their
-- task leases (``tasks.services.projects.project_archive``), in the archiving's transaction.
CREATE OR REPLACE FUNCTION qa_review_project_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_review_leases_end_without_access(
        ARRAY(SELECT DISTINCT i.reviewer_id FROM qa_reviewlayer l
              JOIN qa_reviewitem i ON i.layer_id = l.id
              WHERE l.project_id = NEW.id AND i.state = 'leased'));
    RETURN NULL;
END;
$$;

-- Only a change of a column that decides access fires them: a login, a profile edit or a save
-- of the same values costs nothing.
CREATE OR REPLACE TRIGGER qa_review_member_access
AFTER UPDATE OF role, is_active ON workforce_member
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION qa_review_member_access_changed();

CREATE OR REPLACE TRIGGER qa_review_user_access
AFTER UPDATE OF is_active ON auth_user
FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION qa_review_user_access_changed();

CREATE OR REPLACE TRIGGER qa_review_annotator_access
AFTER UPDATE OF status ON workforce_annotator
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION qa_review_annotator_access_changed();

CREATE OR REPLACE TRIGGER qa_review_project_member_access
AFTER UPDATE OF role, is_active ON tasks_projectmember
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION qa_review_project_member_access_changed();

CREATE OR REPLACE TRIGGER qa_review_project_member_removed
AFTER DELETE ON tasks_projectmember
FOR EACH ROW
EXECUTE FUNCTION qa_review_project_member_access_changed();

CREATE OR REPLACE TRIGGER qa_review_layer_access
AFTER UPDATE OF role ON qa_reviewlayer
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role)
EXECUTE FUNCTION qa_review_layer_access_changed();

CREATE OR REPLACE TRIGGER qa_review_project_access
AFTER UPDATE OF status ON tasks_project
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION qa_review_project_access_changed();
