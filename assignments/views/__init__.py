"""Pages, split by audience: `student` (everyone enrolled), `instructor`, `account`.

Views stay thin: check permission, call one service or selector, render.
"""
