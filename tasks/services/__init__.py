"""Every write to projects, tasks, assignments and annotations."""
