-- Where each stored stack of one session ends: its outermost frame, with
-- the samples of every state (all) and of running threads (R) whose stack
-- ends there.  fidelity.sh decides which frames are thread entry points.
-- Parameter @sid.  Output: all|running|func|module path|address.
WITH RECURSIVE top(id, fid) AS (
	SELECT n.id, n.frame_id FROM stack_nodes n
	WHERE n.session_id = @sid AND n.parent_id = 0
	UNION ALL
	SELECT n.id, top.fid FROM stack_nodes n JOIN top ON n.parent_id = top.id
	WHERE n.session_id = @sid
)
SELECT SUM(c.samples),
	SUM(CASE WHEN c.state = 'R' THEN c.samples ELSE 0 END),
	COALESCE(f.func, '(no stack)'), COALESCE(m.path, ''), COALESCE(f.address, 0)
FROM counts c
LEFT JOIN top ON top.id = c.stack_id
LEFT JOIN frames f ON f.session_id = c.session_id AND f.id = top.fid
LEFT JOIN modules m ON m.session_id = c.session_id AND m.id = f.module_id
WHERE c.session_id = @sid
GROUP BY f.id
ORDER BY 1 DESC;
