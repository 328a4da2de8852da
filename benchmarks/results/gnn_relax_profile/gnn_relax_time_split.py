"""Ad hoc (twenty-first session): share of a GNN relaxation spent in the network (30 ETKDG conformers of one molecule,
shipped potential, one thread). Output: gnn_relax_time_split.txt."""
import time, sys, os
import torch, numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from adjoint_sampling.energy.gnn import GNNEnergy
from adjoint_sampling.energy.relax import relax_with_model, relax_mmff
from adjoint_sampling.core.atomic_system import AtomicSystem
torch.set_num_threads(1)
smi = sys.argv[1] if len(sys.argv) > 1 else "Nc1ccccc1NC(=O)c1ccc(C=C2COC2)cc1F"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
compiled = os.environ.get("COMP", "0") == "1"
mol = Chem.AddHs(Chem.MolFromSmiles(smi))
cids = AllChem.EmbedMultipleConfs(mol, n, randomSeed=0)
pos = torch.tensor(np.stack([mol.GetConformer(c).GetPositions() for c in cids]))
system = AtomicSystem(atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()]), charge=Chem.GetFormalCharge(mol), key=smi)
model = GNNEnergy(checkpoint_path="models/shipped/energy.pt", compiled=compiled)
model.energy_and_forces(system, pos[:2])
calls = []
t_model = [0.0]
orig = model.energy_and_forces
def timed(s, p):
    t = time.perf_counter(); r = orig(s, p); t_model[0] += time.perf_counter() - t; calls.append(p.shape[0]); return r
model.energy_and_forces = timed
t = time.perf_counter()
res = relax_with_model(model, system, pos)
tot = time.perf_counter() - t
print(f"atoms {mol.GetNumAtoms()} confs {len(cids)} total {tot:.2f}s per conf {tot/len(cids):.3f}s model {t_model[0]:.2f}s calls {len(calls)} evals {sum(calls)}")
print("steps median", res.num_steps.median().item(), "max", res.num_steps.max().item(), "converged", res.converged.float().mean().item())
