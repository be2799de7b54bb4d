-- Who may work on a project, and the claim. The algorithm is told in tasks/services/claims.py;
-- the migration installs this file as it is, and a test fails when the installed functions
-- differ from it.


-- Whether an annotator holds a skill level and certifications, and what they lack.
--
-- The one definition of what a requirement of skill and domains means, for a project's
-- annotators (``tasks_qualification``, below) and a review layer's reviewers
-- (``qa_review_qualification``, qa/reviews.sql): their level in ``p_kind`` is at least
-- ``p_min_level`` (no skill row counts as level 0, so level 0 needs none), and every domain of
-- ``p_domains`` has a certification in force (``workforce_certification_state``, the one
-- definition of it). ``unmet`` maps each such domain without one to the state of the
-- certification held there (null when none is held). A null annotator (a member without a
-- working profile) holds level 0 and no certification.
-- Plain SQL, stable and not strict, so the planner inlines it into the queries that call it.
CREATE OR REPLACE FUNCTION tasks_skill_qualification(
    p_annotator bigint, p_kind text, p_min_level integer, p_domains bigint[], p_now timestamptz
) RETURNS TABLE (qualified boolean, skill_level smallint, unmet jsonb)
LANGUAGE sql STABLE
AS $$
SELECT COALESCE(k.level, 0) >= p_min_level
        AND NOT EXISTS (
            SELECT 1 FROM unnest(p_domains) AS rd(domain_id)
            WHERE NOT EXISTS (
                SELECT 1 FROM workforce_certification c
                WHERE c.annotator_id = p_annotator AND c.domain_id = rd.domain_id
                  AND workforce_certification_state(c.status, c.expires_at, p_now) = 'active')),
    k.level,
    -- The same test, domain by domain. A column of its own: the claim reads only
    -- ``qualified``, and the planner drops this subquery from its plan.
    (SELECT COALESCE(jsonb_object_agg(rd.domain_id, held.state), '{}'::jsonb)
     FROM unnest(p_domains) AS rd(domain_id)
     LEFT JOIN LATERAL (
         SELECT workforce_certification_state(c.status, c.expires_at, p_now) AS state
         FROM workforce_certification c
         WHERE c.annotator_id = p_annotator AND c.domain_id = rd.domain_id
     ) held ON true
     WHERE held.state IS DISTINCT FROM 'active')
FROM (SELECT) AS one
LEFT JOIN workforce_annotatorskill k ON k.annotator_id = p_annotator AND k.skill = p_kind
$$;


-- Whether an annotator is qualified for a project at a moment, and what keeps them off it.
--
-- The one definition of eligibility: the claim reads ``qualified``, staffing reads every column
-- and words the reasons. Qualified means: the annotator is active, and holds the project's
-- required skill level in its kind and a certification in force in each required domain
-- (``tasks_skill_qualification``).
-- Plain SQL, stable and not strict, so the planner inlines it into the claim's query.
CREATE OR REPLACE FUNCTION tasks_qualification(
    p_annotator bigint, p_project bigint, p_now timestamptz
) RETURNS TABLE (qualified boolean, skill_level smallint, unmet jsonb)
LANGUAGE sql STABLE
AS $$
SELECT w.status = 'active' AND q.qualified, q.skill_level, q.unmet
FROM tasks_project p
JOIN workforce_annotator w ON w.id = p_annotator
-- The domains read apart: a subquery among a function's arguments keeps the planner from
-- inlining it (it would then run as a query of its own at every call).
CROSS JOIN LATERAL (
    SELECT ARRAY(SELECT rd.domain_id FROM tasks_project_required_domains rd
                 WHERE rd.project_id = p.id) AS ids
) required
CROSS JOIN LATERAL tasks_skill_qualification(
    w.id, p.kind, p.required_skill_level, required.ids, p_now) q
WHERE p.id = p_project
$$;


-- Lease the best task an annotator may work on, in one short transaction; see claim_next.
CREATE OR REPLACE FUNCTION tasks_claim(p_annotator bigint, p_project bigint, p_now timestamptz)
RETURNS TABLE (
    r_outcome text, r_status text, r_assignment bigint, r_task bigint, r_data jsonb,
    r_project bigint, r_name text, r_kind text, r_instructions text, r_schema jsonb,
    r_expires timestamptz, r_unqualified bigint[]
)
LANGUAGE plpgsql VOLATILE
-- Plans are made once per connection, often while a table is still small; without this they
-- would keep sequential scans while the tables grow, and every claim would read every row.
SET enable_seqscan = off
AS $$
DECLARE
    me record;
    live_total bigint;
    live_by_project jsonb;
    cand record;
    picked record;
    gold_task bigint;
    pool record;
    pivot bigint;
BEGIN
    -- Serialises this annotator's claims so their limits hold; nobody else's claims wait.
    -- FOR NO KEY UPDATE: the assignment inserted below only needs the row to stay.
    SELECT w.status, w.max_concurrent_tasks INTO me
    FROM workforce_annotator w WHERE w.id = p_annotator FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        r_outcome := 'not_found'; RETURN NEXT; RETURN;
    END IF;
    r_status := me.status;
    IF me.status <> 'active' THEN
        r_outcome := 'not_active'; RETURN NEXT; RETURN;
    END IF;
    -- The annotator's unexpired leases, per project, in one pass.
    SELECT COALESCE(SUM(n), 0), COALESCE(jsonb_object_agg(project_id, n), '{}')
    INTO live_total, live_by_project
    FROM (SELECT a.project_id, COUNT(*) AS n FROM tasks_assignment a
          WHERE a.annotator_id = p_annotator AND a.status = 'active'
            AND a.lease_expires_at > p_now
          GROUP BY a.project_id) AS live;
    IF live_total >= me.max_concurrent_tasks THEN
        r_outcome := 'at_limit'; RETURN NEXT; RETURN;
    END IF;

    -- Without a task, the outcome says the most hopeful thing found: nothing open now in a
    -- project they may work in, else their limit there, else that they are not qualified.
    r_outcome := 'no_projects';
    FOR cand IN
        SELECT p.id, p.lease_seconds, p.name, p.kind, p.instructions, p.label_schema,
            q.qualified,
            COALESCE((live_by_project ->> p.id::text)::bigint, 0)
                < p.max_concurrent_tasks AS has_room,
            -- The chance that this claim is gold: none while the project's rate is 0; else
            -- the highest of the project's rate, its newcomer rate while the annotator is
            -- one, and a rate a quality rule raised for them.
            CASE WHEN p.gold_rate = 0 THEN 0 ELSE GREATEST(
                p.gold_rate,
                CASE WHEN m.gold_submitted < p.newcomer_gold_tasks
                     THEN p.newcomer_gold_rate ELSE 0 END,
                COALESCE(m.gold_rate, 0)) END AS gold_rate
        -- Where they may hold a lease (access.sql): leases are granted by the rule that ends
        -- them when access ends, account and organization membership included. Read after the
        -- annotator's row is locked, so a change of access that committed meanwhile is seen.
        FROM tasks_lease_projects(p_annotator) lp
        JOIN tasks_project p ON p.id = lp.project_id
        JOIN tasks_projectmember m ON m.project_id = p.id AND m.annotator_id = p_annotator
        CROSS JOIN LATERAL tasks_qualification(p_annotator, p.id, p_now) q
        WHERE p.status = 'active' AND (p_project IS NULL OR p.id = p_project)
        ORDER BY p.priority DESC, p.deadline ASC NULLS LAST, p.id
    LOOP
        IF NOT cand.qualified THEN
            IF r_outcome = 'no_projects' THEN r_outcome := 'not_qualified'; END IF;
            r_unqualified := array_append(r_unqualified, cand.id);
            CONTINUE;
        END IF;
        IF NOT cand.has_room THEN
            IF r_outcome <> 'none_available' THEN r_outcome := 'at_limit'; END IF;
            CONTINUE;
        END IF;
        r_outcome := 'none_available';
        -- A lapsed lease first (its task started earliest). Rows other claimers hold are
        -- skipped, never waited for, here and below. Each "not a task of the annotator's"
        -- test is one probe of assignment_once_per_task per row, kept so by OFFSET 0: as an
        -- anti-join, planned on statistics that lag (a new annotator, a fresh import), it
        -- read all the annotator's assignments for every slot passed, and an annotator who
        -- had released 2,000 tasks waited 0.44 s a claim.
        SELECT s.id, s.task_id, s.seat, s.assignment_id AS previous INTO picked FROM tasks_slot s
        WHERE s.project_id = cand.id AND s.state = 'leased' AND s.lease_expires_at <= p_now
          AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                          WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator OFFSET 0)
        ORDER BY s.lease_expires_at
        LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        -- Then the best open slot: the task others started most (highest seat), task
        -- priority, age. Only the first 64 open slots in that order are looked at: an
        -- annotator far ahead of everyone else did every started task, and would otherwise
        -- pass thousands of their own at every claim (bench/claims.py measures that case).
        IF NOT FOUND THEN
            SELECT s.id, s.task_id, s.seat, NULL::bigint AS previous INTO picked
            FROM (SELECT o.id, o.seat, o.task_priority, o.task_id FROM tasks_slot o
                  WHERE o.project_id = cand.id AND o.state = 'open'
                  ORDER BY o.seat DESC, o.task_priority DESC, o.task_id
                  LIMIT 64) AS w
            JOIN tasks_slot s ON s.id = w.id
            WHERE s.state = 'open'
              AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                              WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator OFFSET 0)
            ORDER BY w.seat DESC, w.task_priority DESC, w.task_id
            LIMIT 1 FOR NO KEY UPDATE OF s SKIP LOCKED;
        END IF;
        -- Past those, a fresh task (its first seat), by priority and age.
        IF NOT FOUND THEN
            SELECT s.id, s.task_id, s.seat, NULL::bigint AS previous INTO picked FROM tasks_slot s
            WHERE s.project_id = cand.id AND s.state = 'open' AND s.seat = 0
              AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                              WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator OFFSET 0)
            ORDER BY s.task_priority DESC, s.task_id
            LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        END IF;
        -- Then any open slot at all, so that no open work is ever missed.
        IF NOT FOUND THEN
            SELECT s.id, s.task_id, s.seat, NULL::bigint AS previous INTO picked FROM tasks_slot s
            WHERE s.project_id = cand.id AND s.state = 'open'
              AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                              WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator OFFSET 0)
            ORDER BY s.seat DESC, s.task_priority DESC, s.task_id
            LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
        END IF;
        r_expires := p_now + make_interval(secs => cand.lease_seconds);
        -- Gold, drawn only once regular work was found: a claim that finds nothing is never
        -- answered with gold, so getting a task when the queue looked empty tells nothing. A
        -- gold task in service the annotator never had, from a random point of the pool so
        -- that exposure spreads. It has no seat and many hold it at once; the annotator's row,
        -- locked above, keeps them from getting it twice. The slot found stays as it was.
        gold_task := NULL;
        IF cand.gold_rate > 0 AND random() < cand.gold_rate THEN
            SELECT min(t.id) AS lo, max(t.id) AS hi INTO pool FROM tasks_task t
            WHERE t.project_id = cand.id AND t.is_gold AND t.gold_retired_at IS NULL;
            IF pool.lo IS NOT NULL THEN
                pivot := pool.lo + floor(random() * (pool.hi - pool.lo + 1))::bigint;
                SELECT t.id INTO gold_task FROM tasks_task t
                WHERE t.project_id = cand.id AND t.is_gold AND t.gold_retired_at IS NULL
                  AND t.id >= pivot
                  AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                                  WHERE a.task_id = t.id AND a.annotator_id = p_annotator OFFSET 0)
                ORDER BY t.id LIMIT 1;
                IF gold_task IS NULL THEN
                    SELECT t.id INTO gold_task FROM tasks_task t
                    WHERE t.project_id = cand.id AND t.is_gold AND t.gold_retired_at IS NULL
                      AND t.id < pivot
                      AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                                      WHERE a.task_id = t.id AND a.annotator_id = p_annotator OFFSET 0)
                    ORDER BY t.id LIMIT 1;
                END IF;
            END IF;
        END IF;
        IF gold_task IS NOT NULL THEN
            INSERT INTO tasks_assignment
                (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
            VALUES (gold_task, NULL, cand.id, p_annotator, 'active', p_now, r_expires)
            RETURNING id INTO r_assignment;
            picked.task_id := gold_task;
        ELSE
            INSERT INTO tasks_assignment
                (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
            VALUES (picked.task_id, picked.id, cand.id, p_annotator, 'active', p_now, r_expires)
            RETURNING id INTO r_assignment;
            UPDATE tasks_slot SET state = 'leased', assignment_id = r_assignment,
                lease_expires_at = r_expires
            WHERE id = picked.id;
            -- A lapsed lease taken over: its holder's assignment ends here.
            IF picked.previous IS NOT NULL THEN
                UPDATE tasks_assignment SET status = 'expired', ended_at = lease_expires_at
                WHERE id = picked.previous AND status = 'active';
            END IF;
            -- The next seat opens once this one is taken.
            UPDATE tasks_slot SET state = 'open'
            WHERE task_id = picked.task_id AND seat = picked.seat + 1 AND state = 'waiting';
        END IF;
        SELECT t.data INTO r_data FROM tasks_task t WHERE t.id = picked.task_id;
        r_outcome := 'claimed';
        r_task := picked.task_id;
        r_project := cand.id;
        r_name := cand.name;
        r_kind := cand.kind;
        r_instructions := cand.instructions;
        r_schema := cand.label_schema;
        RETURN NEXT;
        RETURN;
    END LOOP;
    RETURN NEXT;
END;
$$;
