from django.core.management.base import BaseCommand

from workforce.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create the demo organization with people in every role. Safe to run twice."

    def handle(self, *args, **options):
        organization, logins = seed_demo()
        self.stdout.write(f"Demo organization: {organization.name} ({organization.slug})")
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for username, role in logins:
            self.stdout.write(f"  {username:<10} {role}")
