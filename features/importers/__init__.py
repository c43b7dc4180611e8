"""Importers: turn data files into one validated GraphBatch, before any store is touched.

- ``movielens.load_movielens(folder)``: ml-latest(-small), ML-1M or ML-100K (detected).
- ``hetrec.load_hetrec(folder, graph)``: HetRec 2011 side data, joined on agreeing IMDb ids.
- ``recbole.load_recbole(folder)``: RecBole atomic files, with a mapped knowledge graph.
- ``synthetic.generate_synthetic(...)``: a seeded synthetic graph for scale tests.
- ``merge.merge_with_existing(batch, graph)``: so that sources add up rather than overwrite.

Bad input raises ``errors.ImportFileError`` (a GraphDataError) naming the file and line.
"""
