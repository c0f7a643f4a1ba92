def add_bench(s): pass
