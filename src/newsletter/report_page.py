"""`newsletter report --html`: a campaign's report, or the overview, as one HTML file."""
