"""A one-molecule CREST-style reference set for the GNN reference-label and accuracy benchmark tests."""

from __future__ import annotations

from pathlib import Path

from adjoint_sampling.benchmarks.gnn_reference_labels import ReferenceLabelConfig
from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.parsing import parse_smiles

SMILES = "CCO"
TEST_ID = "rot0_ethanol"


def write_reference_set(folder: Path, num_conformers: int = 3) -> ReferenceLabelConfig:
    """A test list (ethanol, plus one molecule without an ensemble) and ethanol's ensemble of
    ``num_conformers`` ETKDG conformers in CREST's XYZ format; the config labels 2 of them."""
    mol = parse_smiles(SMILES).mol
    conformers = embed_etkdg(mol, num_conformers, seed=3)
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    blocks = []
    for k, xyz in enumerate(conformers):
        blocks.append(f"{len(symbols)}\n  {-10.0 + k}\n")
        blocks.append("".join(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, xyz)))
    (folder / "conformers" / TEST_ID).mkdir(parents=True)
    (folder / "conformers" / TEST_ID / "crest_conformers.xyz").write_text("".join(blocks))
    (folder / "test.txt").write_text(f"Rotatable_Bonds\tSMILES\tHash_Name\n0\t{SMILES}\t{TEST_ID}\n3\tCCCC\tmissing_one\n")
    return ReferenceLabelConfig(test_list=str(folder / "test.txt"), conformer_dir=str(folder / "conformers"),
                                max_conformers=2, sigma=0.05, seed=0)
