-- The state of a certification as it stands at a moment: the one definition of "in force".
--
-- The stored status lags expiry until the beat job records it; this never does. Called by
-- ``CertificationQuerySet.with_state`` (filters, staffing, the services' transitions) and by
-- ``tasks_qualification`` (the claim). Plain SQL, so the planner inlines it into each caller.
CREATE OR REPLACE FUNCTION workforce_certification_state(
    p_status text, p_expires_at timestamptz, p_at timestamptz
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_status = 'active' AND p_expires_at <= p_at THEN 'expired'
    ELSE p_status
END
$$;
