-- Self samples of one session's running (state R) samples, per frame at
-- symbol level: an inlined frame counts for the function it was inlined
-- into (perf report, without --inline, shows ELF symbols only).
-- Parameter @sid: the session.
-- Output: samples|func|module path|address (ELF virtual address).
WITH RECURSIVE sym(id, fid) AS (
	SELECT n.id, n.frame_id FROM stack_nodes n
	WHERE n.session_id = @sid AND n.parent_id = 0
	UNION ALL
	SELECT n.id, CASE WHEN f.inlined THEN sym.fid ELSE n.frame_id END
	FROM stack_nodes n
	JOIN sym ON n.parent_id = sym.id
	JOIN frames f ON f.session_id = n.session_id AND f.id = n.frame_id
	WHERE n.session_id = @sid
)
SELECT SUM(c.samples), f.func, COALESCE(m.path, ''), f.address
FROM counts c
JOIN sym ON sym.id = c.stack_id
JOIN frames f ON f.session_id = c.session_id AND f.id = sym.fid
LEFT JOIN modules m ON m.session_id = c.session_id AND m.id = f.module_id
WHERE c.session_id = @sid AND c.state = 'R'
GROUP BY f.id
ORDER BY 1 DESC;
