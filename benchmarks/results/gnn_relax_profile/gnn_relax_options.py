"""Ad hoc (twenty-first session): what makes a GNN relaxation (relax: gnn) cheaper? 16 pruned ETKDG conformers of
one molecule relaxed with the shipped potential under other L-BFGS settings; heavy-atom RMSD and energy against
the default (fmax 0.5 kcal/mol/A, max step 0.2 A). Output: gnn_relax_options.txt."""
import time, sys
import torch, numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign
from adjoint_sampling.energy.gnn import GNNEnergy
from adjoint_sampling.energy.relax import relax_with_model, relax_mmff
from adjoint_sampling.core.atomic_system import AtomicSystem
torch.set_num_threads(1)
smi = sys.argv[1]
mol = Chem.AddHs(Chem.MolFromSmiles(smi))
cids = list(AllChem.EmbedMultipleConfs(mol, 16, randomSeed=1, pruneRmsThresh=0.5))
pos = torch.tensor(np.stack([mol.GetConformer(c).GetPositions() for c in cids]))
system = AtomicSystem(atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()]), charge=Chem.GetFormalCharge(mol), key=smi, rdkit_mol=mol)
model = GNNEnergy(checkpoint_path="models/shipped/energy.pt")
heavy = Chem.RemoveHs(mol)
def rmsd(a, b):
    out = []
    for x, y in zip(a, b):
        m1 = Chem.Mol(mol); m2 = Chem.Mol(mol)
        for m, p in ((m1, x), (m2, y)):
            c = m.GetConformer(cids[0])
            for i, v in enumerate(p.tolist()): c.SetAtomPosition(i, v)
        out.append(rdMolAlign.GetBestRMS(Chem.RemoveHs(m1), Chem.RemoveHs(m2), prbId=cids[0], refId=cids[0]))
    return np.array(out)
def run(label, start, **kw):
    t = time.perf_counter(); r = relax_with_model(model, system, start, **kw); dt = time.perf_counter() - t
    return r, dt
base, tb = run("base", pos, fmax=0.5)
print(f"n={len(cids)} atoms={mol.GetNumAtoms()} fmax0.5: {tb/len(cids):.3f}s/conf steps med {base.num_steps.median().item()}")
for fm in (1.0, 2.0):
    r, dt = run("f", pos, fmax=fm)
    d = rmsd(r.positions, base.positions)
    print(f"fmax{fm}: {dt/len(cids):.3f}s/conf steps med {r.num_steps.median().item()} rmsd-to-base med {np.median(d):.3f} max {d.max():.3f} dE med {np.median((r.energy-base.energy).numpy()):.3f}")
t = time.perf_counter(); mm = relax_mmff(system, pos); tm = time.perf_counter() - t
for fm in (0.5, 1.0):
    r, dt = run("mm", mm.positions, fmax=fm)
    d = rmsd(r.positions, base.positions)
    print(f"mmff({tm/len(cids):.3f}s)+gnn fmax{fm}: {dt/len(cids):.3f}s/conf steps med {r.num_steps.median().item()} rmsd-to-base med {np.median(d):.3f} max {d.max():.3f} dE med {np.median((r.energy-base.energy).numpy()):.3f}")
for ms in (0.1, 0.3):
    r, dt = run("ms", pos, fmax=0.5, max_step_size=ms)
    d = rmsd(r.positions, base.positions)
    print(f"maxstep{ms}: {dt/len(cids):.3f}s/conf steps med {r.num_steps.median().item()} rmsd-to-base med {np.median(d):.3f} dE med {np.median((r.energy-base.energy).numpy()):.3f}")
