from django.core.management.base import BaseCommand

from tasks.demo import seed_projects
from workforce.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create the demo organization, its people and sample projects. Safe to run twice."

    def handle(self, *args, **options):
        organization, logins = seed_demo()
        projects = seed_projects(organization)
        self.stdout.write(f"Demo organization: {organization.name} ({organization.slug})")
        if projects:
            self.stdout.write(f"Sample projects created: {', '.join(p.name for p in projects)}")
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for login, role in logins:
            self.stdout.write(f"  {login:<18} {role}")
