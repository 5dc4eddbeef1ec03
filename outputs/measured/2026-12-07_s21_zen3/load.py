import torch, time
torch.set_num_threads(1)
a = torch.randn(512, 512)
while True:
    for _ in range(50):
        a = torch.tanh(a @ a)
