"""`lw-registry report`: the run table's metrics (run_table), and the README's results section from run
records: collecting the completed runs (records), grouping them into table rows (groups), rendering the
tables (tables) and figures (figures), the statements computed from them (findings), the section
assembled (section) and written between a file's markers with its figures and record archive (publish).
"""
