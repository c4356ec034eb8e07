"""Server-rendered HTML of the dashboard's pages and their inline SVG charts."""
